// Package local starts the whole product in one process for `make run`: an embedded
// NATS server with JetStream, a private MariaDB server (unless DB_HOST names one), and
// the four services, each through its own Run, exactly as they run in containers.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kelseyhightower/envconfig"
	"golang.org/x/sync/errgroup"

	"github.com/parley-chat/parley/libs/devstack/mariadb"
	"github.com/parley-chat/parley/libs/devstack/natsserver"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
)

// Config is the launcher's own configuration; each service also reads its own.
type Config struct {
	// DataDir holds the embedded NATS store and the private MariaDB data.
	DataDir string `envconfig:"PARLEY_DATA_DIR" default:".data"`
	// NATSURL, when set, uses an existing NATS server instead of the embedded one.
	NATSURL string `envconfig:"NATS_URL"`
	// NATSPort is the embedded server's port (0: a free one).
	NATSPort int `envconfig:"PARLEY_NATS_PORT" default:"4222"`
	// NATSConfig is an optional nats-server config file (users and permissions).
	NATSConfig string `envconfig:"PARLEY_NATS_CONFIG"`
	// NATSSecure starts the embedded server with the users and permissions of
	// PARLEY_NATS_CONFIG (default deploy/nats/nats.conf, the compose file) and connects
	// each service as its own user, with random passwords kept in the data directory.
	NATSSecure bool `envconfig:"PARLEY_NATS_SECURE" default:"false"`
	// DBHost, when set, uses an existing MySQL/MariaDB server instead of the private one.
	DBHost string `envconfig:"DB_HOST"`
}

// Configs are the four services' configurations, read from the environment.
type Configs struct {
	Auth      auth.Config
	Chat      chat.Config
	Inference inference.Config
	Gateway   gateway.Config
}

// LoadConfigs reads the launcher's and every service's configuration.
func LoadConfigs() (Config, Configs, error) {
	var c Config
	var s Configs
	for name, dst := range map[string]any{"launcher": &c, "auth": &s.Auth, "chat": &s.Chat, "inference": &s.Inference, "gateway": &s.Gateway} {
		if err := envconfig.Process("", dst); err != nil {
			return c, s, fmt.Errorf("read %s configuration: %w", name, err)
		}
	}
	return c, s, nil
}

// Run starts everything and blocks until ctx is done, then stops it all in order:
// the services, then NATS, then the private MariaDB.
func Run(ctx context.Context, cfg Config, svc Configs, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	natsURL := cfg.NATSURL
	// passwords are the per-service NATS passwords with PARLEY_NATS_SECURE.
	var passwords map[string]string
	if natsURL == "" {
		port := cfg.NATSPort
		if port != 0 && !portFree(port) {
			log.Warn("nats port busy, using a free one", "port", port)
			port = 0
		}
		confFile := cfg.NATSConfig
		if cfg.NATSSecure {
			src := cfg.NATSConfig
			if src == "" {
				src = filepath.Join("deploy", "nats", "nats.conf")
			}
			var err error
			if confFile, passwords, err = secureNATS(src, cfg.DataDir); err != nil {
				return err
			}
		}
		ns, err := natsserver.Start(natsserver.Options{Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats"), ConfigFile: confFile})
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
			log.Info("nats stopped")
		}()
		natsURL = ns.ClientURL()
		log.Info("nats started", "url", natsURL, "store", filepath.Join(cfg.DataDir, "nats"), "per_service_users", passwords != nil)
	}
	if cfg.DBHost == "" {
		srv, err := mariadb.Start(ctx, filepath.Join(cfg.DataDir, "mysql"), log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Stop(sctx); err != nil {
				log.Error("stop mariadb", "err", err)
			} else {
				log.Info("mariadb stopped")
			}
		}()
		if err := srv.EnsureUser(ctx, svc.Auth.DB.Username, svc.Auth.DB.Password, svc.Auth.DB.Name); err != nil {
			return err
		}
		for _, d := range []*dbTarget{{&svc.Auth.DB.Host, &svc.Auth.DB.Port}, {&svc.Chat.DB.Host, &svc.Chat.DB.Port}} {
			*d.host, *d.port = "127.0.0.1", srv.Port
		}
	}
	svc.Auth.NATSURL, svc.Chat.NATSURL, svc.Inference.NATSURL, svc.Gateway.NATSURL = natsURL, natsURL, natsURL, natsURL
	if passwords != nil {
		svc.Auth.NATSURL = withUser(natsURL, "auth", passwords["auth"])
		svc.Chat.NATSURL = withUser(natsURL, "chat", passwords["chat"])
		svc.Inference.NATSURL = withUser(natsURL, "inference", passwords["inference"])
		svc.Gateway.NATSURL = withUser(natsURL, "gateway", passwords["gateway"])
	}

	ln, err := net.Listen("tcp", svc.Gateway.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (GATEWAY_ADDR): %w", svc.Gateway.Addr, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return auth.Run(gctx, svc.Auth, auth.Deps{Logger: log}) })
	g.Go(func() error { return chat.Run(gctx, svc.Chat, chat.Deps{Logger: log}) })
	g.Go(func() error {
		return inference.Run(gctx, svc.Inference, inference.Deps{Logger: log})
	})
	g.Go(func() error {
		return gateway.Run(gctx, svc.Gateway, gateway.Deps{Logger: log, Listener: ln})
	})
	g.Go(func() error { return announce(gctx, ln.Addr().(*net.TCPAddr), cfg.DataDir, log) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

type dbTarget struct {
	host *string
	port *int
}

// announce prints the URL once the gateway answers /readyz, and writes it to
// DataDir/url for scripts that start the product on a free port.
func announce(ctx context.Context, addr *net.TCPAddr, dataDir string, log *slog.Logger) error {
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
		res, err := client.Get(url + "/readyz?deps=1")
		if err != nil {
			continue
		}
		_ = res.Body.Close()
		if res.StatusCode == http.StatusOK {
			log.Info("parley is ready", "url", url)
			if err := os.WriteFile(filepath.Join(dataDir, "url"), []byte(url+"\n"), 0o600); err != nil {
				log.Warn("write url file", "err", err)
			}
			fmt.Fprintf(os.Stderr, "\n  Parley is running at %s  (Ctrl-C stops everything)\n\n", url)
			return nil
		}
	}
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
