// Package natsserver embeds a real NATS server with JetStream, for `make run` and tests.
package natsserver

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded server. Port 0 picks a random free port.
type Options struct {
	Host     string
	Port     int
	StoreDir string
	// ConfigFile, when set, is a nats-server configuration file (users and
	// permissions) applied on top of the options above.
	ConfigFile string
}

// Start starts an embedded NATS server with JetStream and waits until it accepts
// connections. NoSigs keeps it from trapping SIGINT and exiting the process itself.
func Start(o Options) (*server.Server, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		fileOpts, err := server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("read nats config %s: %w", o.ConfigFile, err)
		}
		opts = fileOpts
	}
	opts.Host = o.Host
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	opts.Port = o.Port
	if o.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.JetStream = true
	opts.StoreDir = o.StoreDir
	opts.NoLog = true
	opts.NoSigs = true
	opts.MaxPayload = 8 << 20
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats server not ready within 15s")
	}
	return ns, nil
}
