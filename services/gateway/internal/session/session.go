// Package session decides whether an access token is good: its signature and claims
// (through authtoken, with public keys fetched from the auth service), and whether its
// session or its user's tokens were revoked (a watched KV bucket, plus revocations this
// replica made itself, which apply at once).
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
)

// Errors of Check. Callers answer ErrInvalid with 401 and ErrNotReady with 503.
var (
	ErrInvalid  = errors.New("invalid or revoked access token")
	ErrNotReady = errors.New("token verification is not ready yet")
)

// userKeyPrefix marks a "log out everywhere" entry in the revocation bucket.
const userKeyPrefix = "user_"

// Principal is who a verified token speaks for.
type Principal = authtoken.Identity

// Config tunes the guard. Zero values take the defaults in brackets.
type Config struct {
	// RefetchInterval is the least time between key fetches caused by an unknown kid [10s].
	RefetchInterval time.Duration
	// RefreshPeriod is how often the key set is fetched anyway, so retired keys go [10m].
	RefreshPeriod time.Duration
	// RevocationTTL is how long a revocation matters: the longest access-token life
	// plus leeway. It is also the TTL of the bucket if the gateway creates it [16m].
	RevocationTTL time.Duration
	// StreamReplicas is the replica count of the bucket if the gateway creates it.
	StreamReplicas int
	// RequestTimeout bounds one key fetch [3s].
	RequestTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.RefetchInterval <= 0 {
		c.RefetchInterval = 10 * time.Second
	}
	if c.RefreshPeriod <= 0 {
		c.RefreshPeriod = 10 * time.Minute
	}
	if c.RevocationTTL <= 0 {
		c.RevocationTTL = 16 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	return c
}

// Guard verifies access tokens. It is safe for concurrent use.
type Guard struct {
	js   jetstream.JetStream
	log  *slog.Logger
	cfg  Config
	keys *authtoken.Keyring

	revReady atomic.Bool

	mu       sync.RWMutex
	sessions map[string]time.Time // revoked session id -> when it was revoked
	users    map[string]time.Time // user id -> tokens issued before this are refused
}

// New returns a guard that fetches keys and watches revocations over nc once Run starts.
func New(nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, cfg Config) *Guard {
	cfg = cfg.withDefaults()
	return &Guard{
		js:  js,
		log: log,
		cfg: cfg,
		keys: authtoken.NewKeyring(nc, log, authtoken.KeyringConfig{
			RefetchInterval: cfg.RefetchInterval, RefreshPeriod: cfg.RefreshPeriod, RequestTimeout: cfg.RequestTimeout,
		}),
		sessions: make(map[string]time.Time),
		users:    make(map[string]time.Time),
	}
}

// Run loads the key set (retrying until auth answers), keeps it fresh, and follows the
// revocation bucket. It blocks until ctx is done and then returns nil.
func (g *Guard) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { g.keys.Run(ctx) })
	wg.Go(func() { g.watchRevocations(ctx) })
	wg.Go(func() { g.prune(ctx) })
	wg.Wait()
	return nil
}

// Ready reports whether tokens can be checked: keys are loaded and the revocation set
// is in sync.
func (g *Guard) Ready() error {
	if !g.keys.Ready() {
		return fmt.Errorf("%w: no token keys from the auth service yet", ErrNotReady)
	}
	if !g.revReady.Load() {
		return fmt.Errorf("%w: revocation list not loaded yet", ErrNotReady)
	}
	return nil
}

// Check verifies token and returns its principal. Every reason for refusal is
// ErrInvalid, except that the guard not being ready yet is ErrNotReady. A token
// verified before is not verified again until its exp (authtoken.Keyring caches it),
// but revocation is checked on every call.
func (g *Guard) Check(ctx context.Context, token string) (Principal, error) {
	if err := g.Ready(); err != nil {
		return Principal{}, err
	}
	p, err := g.keys.Verify(ctx, token)
	if err != nil || g.revoked(p) {
		return Principal{}, ErrInvalid
	}
	return p, nil
}

func (g *Guard) revoked(p Principal) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if _, ok := g.sessions[p.SessionID]; ok {
		return true
	}
	if notBefore, ok := g.users[p.UserID]; ok && p.IssuedAt.Before(notBefore) {
		return true
	}
	return false
}

// RevokeSession refuses the session's tokens on this replica at once (the auth service
// writes the bucket for every other replica).
func (g *Guard) RevokeSession(sessionID string, at time.Time) {
	if sessionID == "" {
		return
	}
	g.mu.Lock()
	g.sessions[sessionID] = at
	g.mu.Unlock()
}

// RevokeUser refuses, on this replica at once, every token of the user issued before at.
func (g *Guard) RevokeUser(userID string, at time.Time) {
	if userID == "" {
		return
	}
	g.mu.Lock()
	if cur, ok := g.users[userID]; !ok || at.After(cur) {
		g.users[userID] = at
	}
	g.mu.Unlock()
}

// watchRevocations follows the revocation bucket, creating it when it does not exist
// yet (so the gateway can start before auth), and starting over if the watch ends.
func (g *Guard) watchRevocations(ctx context.Context) {
	for ctx.Err() == nil {
		err := g.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		g.log.Warn("watch revoked sessions", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (g *Guard) watchOnce(ctx context.Context) error {
	kv, err := g.bucket(ctx)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch bucket %s: %w", events.BucketRevokedSessions, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("revocation watch ended")
			}
			if e == nil {
				if !g.revReady.Swap(true) {
					g.log.Info("revocation list loaded")
				}
				continue
			}
			g.apply(e)
		}
	}
}

func (g *Guard) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RequestTimeout)
	defer cancel()
	kv, err := g.js.KeyValue(ctx, events.BucketRevokedSessions)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open bucket %s: %w", events.BucketRevokedSessions, err)
	}
	kv, err = g.js.CreateKeyValue(ctx, events.RevokedSessionsBucket(g.cfg.RevocationTTL, g.cfg.StreamReplicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = g.js.KeyValue(ctx, events.BucketRevokedSessions)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", events.BucketRevokedSessions, err)
	}
	return kv, nil
}

// apply records one bucket entry: a session id (revoked), or user_<id> with the time
// before which that user's tokens are refused.
func (g *Guard) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		// A deleted entry no longer revokes anything; local revocations of this replica
		// are kept until they age out, as they are never deleted by auth.
		if uid, ok := strings.CutPrefix(key, userKeyPrefix); ok {
			delete(g.users, uid)
		} else {
			delete(g.sessions, key)
		}
		return
	}
	if uid, ok := strings.CutPrefix(key, userKeyPrefix); ok {
		at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(e.Value())))
		if err != nil {
			// Unreadable: refuse every token issued up to when the entry was written.
			at = e.Created()
		}
		if cur, ok := g.users[uid]; !ok || at.After(cur) {
			g.users[uid] = at
		}
		return
	}
	g.sessions[key] = e.Created()
}

// prune forgets revocations older than RevocationTTL: every token they could refuse
// has expired by then.
func (g *Guard) prune(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cutoff := now.Add(-g.cfg.RevocationTTL)
			g.mu.Lock()
			for k, at := range g.sessions {
				if at.Before(cutoff) {
					delete(g.sessions, k)
				}
			}
			for k, at := range g.users {
				if at.Before(cutoff) {
					delete(g.users, k)
				}
			}
			g.mu.Unlock()
		}
	}
}
