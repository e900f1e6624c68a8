// Package chat is the chat service: it owns chats, messages and their outbox, checks
// ownership of every chat and message, and drives the life of an answer (pending,
// streaming, finished) for the inference workers. Run starts it.
package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/chat/internal/app"
	"github.com/parley-chat/parley/services/chat/internal/store"
	"github.com/parley-chat/parley/services/chat/internal/transport"
)

// Config is the chat service's configuration, read from the environment.
type Config struct {
	NATSURL string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	// NATSTLS is NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY (TLS to NATS; see events.NATSTLS).
	NATSTLS events.NATSTLS
	// NATSNKey is NATS_NKEY_SEED_FILE (an NKey user seed to sign in to NATS with; see
	// events.NATSNKey).
	NATSNKey events.NATSNKey
	// StreamReplicas is how many NATS servers keep a copy of the JetStream streams and
	// buckets this service creates (NATS_STREAM_REPLICAS: 1 on one server, 3 on a 3-node
	// cluster; every service must be given the same value).
	StreamReplicas int       `envconfig:"NATS_STREAM_REPLICAS" default:"1"`
	DB             db.Config // DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME, ...
	// OpsAddr serves /metrics, /healthz and /readyz (empty: off).
	OpsAddr string `envconfig:"OPS_ADDR"`
	// GenerationTimeout is how long an answer may stay pending or streaming before the
	// reaper fails it as abandoned.
	GenerationTimeout time.Duration `envconfig:"CHAT_GENERATION_TIMEOUT" default:"15m"`
	// DefaultModel is the model of new chats when the inference workers cannot be
	// asked for theirs (optional).
	DefaultModel string `envconfig:"CHAT_DEFAULT_MODEL"`
	// RPCTimeout bounds the work of one request.
	RPCTimeout time.Duration `envconfig:"CHAT_RPC_TIMEOUT" default:"5s"`
	// ReapInterval is how often abandoned answers are looked for.
	ReapInterval time.Duration `envconfig:"CHAT_REAP_INTERVAL" default:"30s"`
	// TitleTimeout bounds one title request to the chat's model; TitleConcurrency is
	// how many titles one replica asks for at a time.
	TitleTimeout     time.Duration `envconfig:"CHAT_TITLE_TIMEOUT" default:"30s"`
	TitleConcurrency int           `envconfig:"CHAT_TITLE_CONCURRENCY" default:"4"`
	// KeysWait is how long the service waits at start for auth's token keys and the
	// revoked-sessions list before it announces itself anyway.
	KeysWait time.Duration `envconfig:"CHAT_KEYS_WAIT" default:"10s"`
}

// Deps are the chat service's dependencies.
type Deps struct {
	Logger *slog.Logger
}

const shutdownTimeout = 10 * time.Second

func (c Config) withDefaults() Config {
	if c.NATSURL == "" {
		c.NATSURL = nats.DefaultURL
	}
	if c.GenerationTimeout <= 0 {
		c.GenerationTimeout = 15 * time.Minute
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 5 * time.Second
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = 30 * time.Second
	}
	if c.TitleTimeout <= 0 {
		c.TitleTimeout = 30 * time.Second
	}
	if c.TitleConcurrency <= 0 {
		c.TitleConcurrency = 4
	}
	if c.KeysWait <= 0 {
		c.KeysWait = 10 * time.Second
	}
	return c
}

// Run runs the chat service until ctx is done. It returns nil on a clean stop and
// closes everything it opened.
func Run(ctx context.Context, cfg Config, deps Deps) (err error) {
	cfg = cfg.withDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("service", events.ChatService)

	sqlDB, err := db.Open(cfg.DB)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sqlDB.Close()) }()
	if err := db.Wait(ctx, sqlDB); err != nil {
		return stopped(ctx, err)
	}
	if err := store.CheckBinlog(ctx, sqlDB); err != nil {
		return stopped(ctx, err)
	}
	if err := db.Migrate(ctx, sqlDB, "chat"); err != nil {
		return stopped(ctx, err)
	}
	st, err := store.New(ctx, sqlDB)
	if err != nil {
		return stopped(ctx, err)
	}

	natsOpts, err := events.NATSOptions(cfg.NATSTLS, cfg.NATSNKey)
	if err != nil {
		return err
	}
	nc, err := events.Connect(cfg.NATSURL, events.ChatService, log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	svc := app.New(app.Config{DefaultModel: cfg.DefaultModel, GenerationTimeout: cfg.GenerationTimeout},
		st, transport.NewModels(nc, log), transport.NewNotifier(nc, js), log)
	reg := ops.NewRegistry()
	// The user-facing RPCs verify the access token the gateway forwards, with auth's
	// public keys: fetched in the background (retrying while auth is not up) and on
	// first use, refetched on an unknown kid; until then those RPCs answer unavailable.
	keys := authtoken.NewKeyring(nc, log, authtoken.KeyringConfig{})
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	g, gctx := errgroup.WithContext(runCtx)
	// Sessions revoked by logout are refused too: the bucket auth writes (chat waits
	// for it rather than create it).
	revs := authtoken.NewRevocations(js, log, authtoken.RevocationsConfig{})
	g.Go(func() error { keys.Run(gctx); return nil })
	g.Go(func() error { revs.Run(gctx); return nil })
	// The service announces itself (its micro endpoints answer $SRV.PING, which the
	// gateway's /readyz?deps=1 counts) once it can verify tokens, so "ready" means its
	// user RPCs work; with auth away longer than KeysWait it serves anyway (its user
	// RPCs answer unavailable meanwhile, and the workers' calls need no token).
	wctx, cancelWait := context.WithTimeout(gctx, cfg.KeysWait)
	if err := errors.Join(keys.Wait(wctx), revs.Wait(wctx)); err != nil && ctx.Err() == nil {
		log.Warn("serving before auth's token keys and revocations could be loaded", "waited", cfg.KeysWait)
	}
	cancelWait()
	server, err := transport.Serve(nc, svc, keys, revs, log, cfg.RPCTimeout, ops.NewRPCMetrics(reg, events.ChatService))
	if err != nil {
		cancelRun()
		return errors.Join(err, g.Wait())
	}
	relay := transport.NewRelay(st, nc, js, log)
	relay.Replicas = cfg.StreamReplicas

	g.Go(func() error { return relay.Run(gctx) })
	g.Go(func() error { return reapLoop(gctx, svc, cfg.ReapInterval, log) })
	g.Go(func() error { return titleLoop(gctx, svc, transport.NewTitles(nc), cfg, log) })
	g.Go(func() error {
		return ops.Serve(gctx, cfg.OpsAddr, ops.Handler(reg, map[string]ops.Check{
			"nats": ops.NATSConnected(nc), "mysql": ops.DBReachable(sqlDB),
			"tokens": func(context.Context) error {
				switch {
				case !keys.Ready():
					return errors.New("auth's token keys not fetched yet")
				case !revs.Ready():
					return errors.New("revoked sessions not loaded yet")
				}
				return nil
			},
		}), log)
	})
	log.Info("chat service started", "nats", nc.ConnectedUrlRedacted(), "db", cfg.DB.String())

	<-gctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	stopErr := server.Stop(sctx)
	runErr := g.Wait()
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		stopErr = errors.Join(stopErr, fmt.Errorf("drain nats: %w", err))
	}
	for nc.IsDraining() && sctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	log.Info("chat service stopped")
	return errors.Join(runErr, stopErr)
}

// stopped hides the error of a start interrupted by ctx: that is a clean stop.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func reapLoop(ctx context.Context, svc *app.Service, every time.Duration, log *slog.Logger) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		n, err := svc.Reap(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("reaper failed", "err", err)
		} else if n > 0 {
			log.Info("abandoned answers failed", "count", n)
		}
	}
}

// titlePoll is how often the titler looks for due titles when nothing woke it.
const titlePoll = 2 * time.Second

// titleLoop generates the titles of chats after their first answer, woken right after
// such an answer is stored; the chats table is its queue, so a title left undone by a
// stop or a crash is taken up again.
func titleLoop(ctx context.Context, svc *app.Service, titles app.Titler, cfg Config, log *slog.Logger) error {
	tick := time.NewTicker(titlePoll)
	defer tick.Stop()
	for {
		for ctx.Err() == nil {
			n, err := svc.GenerateTitles(ctx, titles, cfg.TitleConcurrency, cfg.TitleConcurrency, cfg.TitleTimeout)
			if err != nil && ctx.Err() == nil {
				log.Warn("titler failed", "err", err)
			}
			if err != nil || n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-svc.TitleWake():
		}
	}
}
