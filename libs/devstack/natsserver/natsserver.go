// Package natsserver embeds a real NATS server with JetStream, for `make run` and tests.
package natsserver

import (
	"fmt"
	"strings"
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
	// Cluster, when set, makes the server a node of a NATS cluster (JetStream then
	// runs clustered: streams can have replicas on several nodes).
	Cluster *Cluster
}

// Cluster places a server in a cluster.
type Cluster struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// ServerName is this node's name, unique in the cluster.
	ServerName string
	// Port is this node's cluster (route) port.
	Port int
	// Routes are the route URLs of the nodes (nats://host:port), this one included.
	Routes []string
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
	if c := o.Cluster; c != nil {
		opts.ServerName = c.ServerName
		opts.Cluster.Name = c.Name
		opts.Cluster.Host = opts.Host
		opts.Cluster.Port = c.Port
		opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	}
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
