// Package gateway is the only HTTP edge of Parley: it serves the JSON API and the SPA,
// authenticates requests with the auth service's public keys, turns each API call
// into a NATS request, and relays answers as server-sent events from JetStream.
// It keeps no state of its own, so any number of replicas can run.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway/internal/metrics"
	"github.com/parley-chat/parley/services/gateway/internal/session"
	"github.com/parley-chat/parley/services/gateway/internal/spa"
	"github.com/parley-chat/parley/services/gateway/internal/transport"
)

// Config is the gateway's configuration, read from the environment by cmd/gateway.
// Zero values (as in tests' Config literals) take the defaults.
type Config struct {
	// NATSURL is the NATS server to use.
	NATSURL string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	// NATSTLS is NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY (TLS to NATS; see events.NATSTLS).
	NATSTLS events.NATSTLS
	// NATSNKey is NATS_NKEY_SEED_FILE (an NKey user seed to sign in to NATS with; see
	// events.NATSNKey).
	NATSNKey events.NATSNKey
	// StreamReplicas is how many NATS servers keep a copy of the JetStream streams and
	// buckets this service creates (NATS_STREAM_REPLICAS: 1 on one server, 3 on a 3-node
	// cluster; every service must be given the same value).
	StreamReplicas int `envconfig:"NATS_STREAM_REPLICAS" default:"1"`
	// Addr is where HTTP is served (ignored when Deps.Listener is set).
	Addr string `envconfig:"GATEWAY_ADDR" default:":8080"`
	// WebDir holds the built SPA (index.html and assets/).
	WebDir string `envconfig:"WEB_DIR" default:"web/dist"`
	// CookieSecure makes session cookies Secure __Host- cookies (and sends HSTS) even
	// on plain-HTTP requests, as behind a TLS-terminating proxy. TLS requests always
	// get them.
	CookieSecure bool `envconfig:"COOKIE_SECURE" default:"false"`
	// TrustedProxies are comma-separated CIDRs of proxies whose X-Forwarded-For is
	// believed for the client IP; empty means the TCP peer is the client.
	TrustedProxies []string `envconfig:"GATEWAY_TRUSTED_PROXIES"`
	// TrustedOrigins are comma-separated extra origins (scheme://host:port) allowed to
	// make cookie-authenticated unsafe requests, e.g. a dev server on another port.
	TrustedOrigins []string `envconfig:"GATEWAY_TRUSTED_ORIGINS"`
	// SendRate is how many messages (sends and regenerations) a user may post per minute.
	SendRate int `envconfig:"GATEWAY_SEND_RATE" default:"30"`
	// AuthRate is how many signups and logins one client IP may try per minute.
	AuthRate int `envconfig:"GATEWAY_AUTH_RATE" default:"30"`
	// RevocationTTL is how long a revoked session matters (longest access-token life
	// plus leeway); also the TTL of the revocation bucket if the gateway creates it.
	RevocationTTL time.Duration `envconfig:"GATEWAY_REVOCATION_TTL" default:"16m"`
	// KeepAlive is the interval of keepalive comments on event streams.
	KeepAlive time.Duration `envconfig:"GATEWAY_SSE_KEEPALIVE" default:"15s"`
	// SendTimeout is how long a message send or regenerate waits for chat. Under a burst
	// chat queues sends and answers late; a shorter wait answers 504 for sends chat
	// then stores and answers anyway. At most maxSendTimeout (the HTTP write timeout
	// must leave room for the reply).
	SendTimeout time.Duration `envconfig:"GATEWAY_SEND_TIMEOUT" default:"20s"`
	// ShutdownTimeout bounds the graceful stop.
	ShutdownTimeout time.Duration `envconfig:"GATEWAY_SHUTDOWN_TIMEOUT" default:"10s"`
}

func (c Config) withDefaults() Config {
	if c.NATSURL == "" {
		c.NATSURL = "nats://127.0.0.1:4222"
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.WebDir == "" {
		c.WebDir = "web/dist"
	}
	if c.RevocationTTL <= 0 {
		c.RevocationTTL = 16 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 20 * time.Second
	}
	c.SendTimeout = min(c.SendTimeout, maxSendTimeout)
	return c
}

// Deps are what the gateway gets from its caller.
type Deps struct {
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Listener, when set, is served instead of listening on Config.Addr (tests pass a
	// 127.0.0.1:0 listener). Run closes it.
	Listener net.Listener
}

// HTTP server limits.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 16 << 10
	// maxSendTimeout keeps a send's wait for chat inside writeTimeout.
	maxSendTimeout = writeTimeout - 5*time.Second
)

// Run serves until ctx is done, then stops: HTTP first (open streams are ended), then
// the background work, then NATS. It returns nil on a clean stop.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	cfg = cfg.withDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proxies, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return err
	}

	ln := deps.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	defer ln.Close()

	natsOpts, err := events.NATSOptions(cfg.NATSTLS, cfg.NATSNKey)
	if err != nil {
		return err
	}
	nc, err := events.Connect(cfg.NATSURL, "gateway", log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}

	guard := session.New(nc, js, log, session.Config{RevocationTTL: cfg.RevocationTTL, StreamReplicas: cfg.StreamReplicas})
	shutdownCtx, startShutdown := context.WithCancel(context.Background())
	defer startShutdown()
	edge, err := transport.New(transport.Deps{
		Logger:   log,
		NC:       nc,
		JS:       js,
		Guard:    guard,
		Metrics:  metrics.New(),
		Shutdown: shutdownCtx,
	}, transport.Options{
		CookieSecure:   cfg.CookieSecure,
		TrustedProxies: proxies,
		TrustedOrigins: cfg.TrustedOrigins,
		SendRate:       cfg.SendRate,
		AuthRate:       cfg.AuthRate,
		WebDir:         cfg.WebDir,
		KeepAlive:      cfg.KeepAlive,
		SendTimeout:    cfg.SendTimeout,
	})
	if err != nil {
		return err
	}
	if err := spa.Built(cfg.WebDir); err != nil {
		log.Warn("web app not built: serving a placeholder page (run make web)", "web_dir", cfg.WebDir)
	}

	srv := &http.Server{
		Handler:           edge.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(startShutdown)

	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		log.Info("gateway listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error { return guard.Run(bgCtx) })
	g.Go(func() error { ensureGenerations(bgCtx, js, cfg.StreamReplicas, log); return nil })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", "err", err)
			_ = srv.Close()
		}
		stopBackground()
		if err := nc.Drain(); err != nil {
			log.Warn("nats drain", "err", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("gateway stopped")
	return nil
}

// ensureGenerations creates the GENERATIONS stream if it does not exist yet (chat and
// inference do the same; whoever starts first creates it). Without permission to
// create streams it only waits for it to appear.
func ensureGenerations(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) {
	wait := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Stream(cctx, events.StreamGenerations)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateOrUpdateStream(cctx, events.GenerationsStream(replicas))
		}
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("ensure stream", "stream", events.StreamGenerations, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

func parsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			if a, aerr := netip.ParseAddr(c); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("GATEWAY_TRUSTED_PROXIES: %q is not a CIDR: %w", c, err)
			}
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Route is one HTTP route of the gateway.
type Route = transport.Route

// Routes lists every route the gateway serves, as chi sees them (for tests that must
// cover each one, e.g. the cross-user access suite).
func Routes() ([]Route, error) {
	edge, err := transport.New(transport.Deps{}, transport.Options{})
	if err != nil {
		return nil, err
	}
	return edge.Routes()
}
