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
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events/authtoken"
)

// Errors of Check. Callers answer ErrInvalid with 401 and ErrNotReady with 503.
var (
	ErrInvalid  = errors.New("invalid or revoked access token")
	ErrNotReady = errors.New("token verification is not ready yet")
)

// Principal is who a verified token speaks for.
type Principal = authtoken.Identity

// Config tunes the guard. Zero values take the defaults in brackets (authtoken's
// KeyringConfig and RevocationsConfig apply them).
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

// Guard verifies access tokens. It is safe for concurrent use.
type Guard struct {
	keys *authtoken.Keyring
	revs *authtoken.Revocations
}

// New returns a guard that fetches keys and watches revocations over nc once Run starts.
func New(nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, cfg Config) *Guard {
	return &Guard{
		keys: authtoken.NewKeyring(nc, log, authtoken.KeyringConfig{
			RefetchInterval: cfg.RefetchInterval, RefreshPeriod: cfg.RefreshPeriod, RequestTimeout: cfg.RequestTimeout,
		}),
		// The gateway may start before auth: it creates the bucket if need be.
		revs: authtoken.NewRevocations(js, log, authtoken.RevocationsConfig{
			TTL: cfg.RevocationTTL, CreateBucket: true, StreamReplicas: cfg.StreamReplicas, RequestTimeout: cfg.RequestTimeout,
		}),
	}
}

// Run loads the key set (retrying until auth answers), keeps it fresh, and follows the
// revocation bucket. It blocks until ctx is done and then returns nil.
func (g *Guard) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { g.keys.Run(ctx) })
	wg.Go(func() { g.revs.Run(ctx) })
	wg.Wait()
	return nil
}

// Ready reports whether tokens can be checked: keys are loaded and the revocation set
// is in sync.
func (g *Guard) Ready() error {
	if !g.keys.Ready() {
		return fmt.Errorf("%w: no token keys from the auth service yet", ErrNotReady)
	}
	if !g.revs.Ready() {
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
	if err != nil || g.revs.Revoked(p) {
		return Principal{}, ErrInvalid
	}
	return p, nil
}

// RevokeSession refuses the session's tokens on this replica at once (the auth service
// writes the bucket for every other replica).
func (g *Guard) RevokeSession(sessionID string, at time.Time) { g.revs.RevokeSession(sessionID, at) }

// RevokeUser refuses, on this replica at once, every token of the user issued before at.
func (g *Guard) RevokeUser(userID string, at time.Time) { g.revs.RevokeUser(userID, at) }
