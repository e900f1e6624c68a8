// Package auth is the Parley auth service: it owns users, sessions, refresh tokens and
// the token-signing keys, and answers the auth.v1.* NATS subjects (signup, login,
// refresh, logout, user lookup, public keys). Per-account login throttling lives in
// MySQL (shared by replicas); the per-client-IP limit is kept in each process's memory.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/auth/internal/app"
	"github.com/parley-chat/parley/services/auth/internal/password"
	"github.com/parley-chat/parley/services/auth/internal/store"
	"github.com/parley-chat/parley/services/auth/internal/transport"
)

// Config is the auth service's configuration, read from the environment.
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
	DB             db.Config // DB_USERNAME, DB_PASSWORD, DB_HOST, DB_PORT, DB_NAME, DB_TLS, DB_MAX_OPEN_CONNS

	// RequestTimeout bounds the work of one request (including a wait for a hashing slot).
	RequestTimeout time.Duration `envconfig:"AUTH_REQUEST_TIMEOUT" default:"5s"`

	AccessTokenTTL         time.Duration `envconfig:"AUTH_ACCESS_TOKEN_TTL" default:"10m"`
	SessionIdleTimeout     time.Duration `envconfig:"AUTH_SESSION_IDLE_TIMEOUT" default:"30m"`
	SessionAbsoluteTimeout time.Duration `envconfig:"AUTH_SESSION_ABSOLUTE_TIMEOUT" default:"12h"`
	// RefreshReuseGrace is how long a used refresh token still answers its successor.
	RefreshReuseGrace time.Duration `envconfig:"AUTH_REFRESH_REUSE_GRACE" default:"10s"`

	Argon2MemoryKiB uint32 `envconfig:"AUTH_ARGON2_MEMORY_KIB" default:"65536"`
	Argon2Time      uint32 `envconfig:"AUTH_ARGON2_TIME" default:"3"`
	Argon2Threads   uint8  `envconfig:"AUTH_ARGON2_THREADS" default:"4"`
	// HashConcurrency bounds concurrent password hashes (0: runtime.NumCPU()).
	HashConcurrency int `envconfig:"AUTH_HASH_CONCURRENCY" default:"0"`
	// HashQueue is how many hashes may wait for a slot before 429 too_many_attempts.
	HashQueue int `envconfig:"AUTH_HASH_QUEUE" default:"32"`

	// LoginIPPerMinute and LoginIPBurst limit login and signup attempts per client IP
	// (a token bucket per process; 0 turns it off).
	LoginIPPerMinute int `envconfig:"AUTH_LOGIN_IP_PER_MINUTE" default:"20"`
	LoginIPBurst     int `envconfig:"AUTH_LOGIN_IP_BURST" default:"20"`

	// RotateKey starts a new signing key at start (the old one stays listed until its
	// tokens have expired). KeyMaxAge rotates the key when it is older (0: never).
	RotateKey bool          `envconfig:"AUTH_ROTATE_KEY" default:"false"`
	KeyMaxAge time.Duration `envconfig:"AUTH_KEY_MAX_AGE" default:"720h"`

	// OpsAddr serves /metrics, /healthz and /readyz (empty: off).
	OpsAddr string `envconfig:"OPS_ADDR"`
}

// Deps are what Run is given rather than makes.
type Deps struct {
	Logger *slog.Logger
}

// Run starts the auth service and blocks until ctx is done. It returns nil on a clean
// stop and closes everything it opened.
func Run(ctx context.Context, cfg Config, deps Deps) (err error) {
	defer func() {
		// Stopped while still starting: that is a clean stop too.
		if err != nil && ctx.Err() != nil {
			err = nil
		}
	}()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", events.AuthService)
	if cfg.AccessTokenTTL <= 0 || cfg.SessionIdleTimeout <= 0 || cfg.SessionAbsoluteTimeout <= 0 {
		return errors.New("auth config: token ttl and session timeouts must be positive")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}

	sqlDB, err := db.Open(cfg.DB)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	if err := db.Wait(ctx, sqlDB); err != nil {
		return err
	}
	if err := db.Migrate(ctx, sqlDB, "auth"); err != nil {
		return err
	}

	natsOpts, err := events.NATSOptions(cfg.NATSTLS, cfg.NATSNKey)
	if err != nil {
		return err
	}
	nc, err := events.Connect(cfg.NATSURL, events.AuthService, log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := revocationBucket(ctx, nc, cfg.AccessTokenTTL+time.Minute, cfg.StreamReplicas, log)
	if err != nil {
		return err
	}

	hasher := password.New(password.Params{
		MemoryKiB: cfg.Argon2MemoryKiB,
		Time:      cfg.Argon2Time,
		Threads:   cfg.Argon2Threads,
	}, cfg.HashConcurrency, cfg.HashQueue)
	svc, err := app.New(ctx, app.Config{
		AccessTTL:       cfg.AccessTokenTTL,
		IdleTimeout:     cfg.SessionIdleTimeout,
		AbsoluteTimeout: cfg.SessionAbsoluteTimeout,
		ReuseGrace:      cfg.RefreshReuseGrace,
		KeyMaxAge:       cfg.KeyMaxAge,
		RotateKey:       cfg.RotateKey,
		IPPerMinute:     cfg.LoginIPPerMinute,
		IPBurst:         cfg.LoginIPBurst,
	}, store.New(sqlDB), transport.KVRevoker{KV: kv}, hasher, log)
	if err != nil {
		return fmt.Errorf("start auth: %w", err)
	}

	reg := ops.NewRegistry()
	keys := authtoken.NewKeyringFunc(transport.Keys(svc), log, authtoken.KeyringConfig{})
	ms, err := transport.Start(nc, svc, keys, log, cfg.RequestTimeout, ops.NewRPCMetrics(reg, events.AuthService))
	if err != nil {
		return err
	}
	log.Info("auth service started", "db", cfg.DB.String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { keys.Run(gctx); return nil })
	g.Go(func() error {
		svc.Maintain(gctx)
		return nil
	})
	g.Go(func() error {
		return ops.Serve(gctx, cfg.OpsAddr, ops.Handler(reg, map[string]ops.Check{
			"nats": ops.NATSConnected(nc), "mysql": ops.DBReachable(sqlDB),
		}), log)
	})
	<-gctx.Done()

	// Stop taking requests and let the ones in flight finish, then the rest.
	if err := ms.Stop(); err != nil {
		log.Warn("stop micro service", "err", err)
	}
	_ = g.Wait()
	drainNATS(nc, log)
	log.Info("auth service stopped")
	return nil
}

// revocationBucket creates (or updates) the revoked-sessions KV bucket, retrying until
// NATS answers or ctx ends.
func revocationBucket(ctx context.Context, nc *nats.Conn, ttl time.Duration, replicas int, log *slog.Logger) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(cctx, events.RevokedSessionsBucket(ttl, replicas))
		cancel()
		if err == nil {
			return kv, nil
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("create revoked-sessions bucket failed; retrying", "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create revoked-sessions bucket: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

func drainNATS(nc *nats.Conn, log *slog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		log.Warn("nats drain timed out")
		nc.Close()
	}
}
