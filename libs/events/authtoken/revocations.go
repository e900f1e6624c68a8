package authtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// userKeyPrefix marks a "log out everywhere" entry in the revocation bucket.
const userKeyPrefix = "user_"

// RevocationsConfig tunes Revocations. Zero values take the defaults in brackets.
type RevocationsConfig struct {
	// TTL is how long a revocation matters: the longest access-token life plus leeway
	// [16m]. It is also the TTL of the bucket when CreateBucket creates it.
	TTL time.Duration
	// CreateBucket creates the bucket when it does not exist yet (the gateway may start
	// before auth, which owns it); without it, Run waits for the bucket.
	CreateBucket bool
	// StreamReplicas is the replica count of a bucket created here.
	StreamReplicas int
	// RequestTimeout bounds one look-up of the bucket [3s].
	RequestTimeout time.Duration
}

func (c RevocationsConfig) withDefaults() RevocationsConfig {
	if c.TTL <= 0 {
		c.TTL = 16 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	return c
}

// Revocations follows the revoked-sessions bucket the auth service writes
// (events.BucketRevokedSessions: a session id, or user_<id> with the time before which
// that user's tokens are refused) and says whether a verified token was revoked. A
// caller may also revoke at once what it has just revoked through auth. It is safe for
// concurrent use.
type Revocations struct {
	js  jetstream.JetStream
	log *slog.Logger
	cfg RevocationsConfig

	ready  atomic.Bool
	loaded chan struct{} // closed when ready first becomes true

	mu       sync.RWMutex
	sessions map[string]time.Time // revoked session id -> when it was revoked
	users    map[string]time.Time // user id -> tokens issued before this are refused
}

// NewRevocations returns revocations that follow the bucket over js once Run starts.
func NewRevocations(js jetstream.JetStream, log *slog.Logger, cfg RevocationsConfig) *Revocations {
	return &Revocations{
		js: js, log: log, cfg: cfg.withDefaults(), loaded: make(chan struct{}),
		sessions: make(map[string]time.Time), users: make(map[string]time.Time),
	}
}

// Ready reports whether the bucket's content has been loaded once.
func (r *Revocations) Ready() bool { return r.ready.Load() }

// Wait returns once the bucket's content has been loaded (nil) or ctx is done.
func (r *Revocations) Wait(ctx context.Context) error {
	select {
	case <-r.loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Revoked says whether id's session, or every token of its user issued before it,
// was revoked.
func (r *Revocations) Revoked(id Identity) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.sessions[id.SessionID]; ok {
		return true
	}
	if notBefore, ok := r.users[id.UserID]; ok && id.IssuedAt.Before(notBefore) {
		return true
	}
	return false
}

// RevokeSession refuses the session's tokens here at once (auth writes the bucket for
// everyone else).
func (r *Revocations) RevokeSession(sessionID string, at time.Time) {
	if sessionID == "" {
		return
	}
	r.mu.Lock()
	r.sessions[sessionID] = at
	r.mu.Unlock()
}

// RevokeUser refuses here, at once, every token of the user issued before at.
func (r *Revocations) RevokeUser(userID string, at time.Time) {
	if userID == "" {
		return
	}
	r.mu.Lock()
	if cur, ok := r.users[userID]; !ok || at.After(cur) {
		r.users[userID] = at
	}
	r.mu.Unlock()
}

// Run follows the bucket (starting over if the watch ends) and forgets revocations
// older than the TTL, until ctx is done.
func (r *Revocations) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.prune(ctx) })
	for ctx.Err() == nil {
		err := r.watchOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		r.log.Warn("watch revoked sessions", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	wg.Wait()
}

func (r *Revocations) watchOnce(ctx context.Context) error {
	kv, err := r.bucket(ctx)
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
				if !r.ready.Swap(true) {
					close(r.loaded)
					r.log.Info("revocation list loaded")
				}
				continue
			}
			r.apply(e)
		}
	}
}

func (r *Revocations) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	kv, err := r.js.KeyValue(ctx, events.BucketRevokedSessions)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) || !r.cfg.CreateBucket {
		return nil, fmt.Errorf("open bucket %s: %w", events.BucketRevokedSessions, err)
	}
	kv, err = r.js.CreateKeyValue(ctx, events.RevokedSessionsBucket(r.cfg.TTL, r.cfg.StreamReplicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = r.js.KeyValue(ctx, events.BucketRevokedSessions)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", events.BucketRevokedSessions, err)
	}
	return kv, nil
}

// apply records one bucket entry.
func (r *Revocations) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		// A deleted entry no longer revokes anything; local revocations are kept until
		// they age out, as auth never deletes them.
		if uid, ok := strings.CutPrefix(key, userKeyPrefix); ok {
			delete(r.users, uid)
		} else {
			delete(r.sessions, key)
		}
		return
	}
	if uid, ok := strings.CutPrefix(key, userKeyPrefix); ok {
		at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(e.Value())))
		if err != nil {
			// Unreadable: refuse every token issued up to when the entry was written.
			at = e.Created()
		}
		if cur, ok := r.users[uid]; !ok || at.After(cur) {
			r.users[uid] = at
		}
		return
	}
	r.sessions[key] = e.Created()
}

// prune forgets revocations older than the TTL: every token they could refuse has
// expired by then.
func (r *Revocations) prune(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cutoff := now.Add(-r.cfg.TTL)
			r.mu.Lock()
			for k, at := range r.sessions {
				if at.Before(cutoff) {
					delete(r.sessions, k)
				}
			}
			for k, at := range r.users {
				if at.Before(cutoff) {
					delete(r.users, k)
				}
			}
			r.mu.Unlock()
		}
	}
}
