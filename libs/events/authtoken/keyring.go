package authtoken

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
)

// ErrNoKeys is returned by Keyring.Verify while no key set has been fetched yet: the
// caller answers "unavailable" (503), not "unauthenticated".
var ErrNoKeys = errors.New("no token keys from the auth service yet")

// Identity is what a verified access token says about its bearer.
type Identity struct {
	UserID    string
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// KeyringConfig tunes a Keyring. Zero values take the defaults in brackets.
type KeyringConfig struct {
	// RefetchInterval is the least time between key fetches caused by an unknown kid [10s].
	RefetchInterval time.Duration
	// RetryInterval is the least time between key fetches while none succeeded yet [1s].
	RetryInterval time.Duration
	// RefreshPeriod is how often Run fetches the key set anyway, so retired keys go [10m].
	RefreshPeriod time.Duration
	// RequestTimeout bounds one key fetch [3s].
	RequestTimeout time.Duration
}

func (c KeyringConfig) withDefaults() KeyringConfig {
	if c.RefetchInterval <= 0 {
		c.RefetchInterval = 10 * time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.RefreshPeriod <= 0 {
		c.RefreshPeriod = 10 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	return c
}

// Keyring verifies access tokens with the public keys the auth service publishes on
// events.SubjectAuthKeys. It fetches them over NATS (in Run, and lazily on first use
// while it has none), fetches them again (rate-limited) when a token names an unknown
// kid, and caches verified tokens by their SHA-256 until their exp, so the common case
// costs a hash and a map look-up rather than a signature check. The cache is bounded
// and emptied whenever the key set changes (a retired key's tokens must not stay
// accepted). It checks no revocation: that is the caller's business. It is safe for
// concurrent use.
type Keyring struct {
	source   func(ctx context.Context) ([]events.PublicKey, error)
	log      *slog.Logger
	cfg      KeyringConfig
	verifier *Verifier
	ready    atomic.Bool
	loaded   chan struct{} // closed when ready first becomes true

	fetchMu   sync.Mutex
	lastFetch time.Time
	keysFP    [sha256.Size]byte // of the key set last fetched

	cache *tokenCache
	now   func() time.Time
}

// NewKeyring returns a keyring that fetches keys over nc.
func NewKeyring(nc *nats.Conn, log *slog.Logger, cfg KeyringConfig) *Keyring {
	return NewKeyringFunc(func(ctx context.Context) ([]events.PublicKey, error) {
		rep, err := events.Request[events.Empty, events.KeysReply](ctx, nc, events.SubjectAuthKeys, events.Empty{})
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", events.SubjectAuthKeys, err)
		}
		return rep.Keys, nil
	}, log, cfg)
}

// NewKeyringFunc returns a keyring that gets its keys from source (the auth service
// reads its own).
func NewKeyringFunc(source func(ctx context.Context) ([]events.PublicKey, error), log *slog.Logger, cfg KeyringConfig) *Keyring {
	return &Keyring{
		source:   source,
		log:      log,
		cfg:      cfg.withDefaults(),
		verifier: NewVerifier(nil),
		cache:    newTokenCache(),
		now:      time.Now,
		loaded:   make(chan struct{}),
	}
}

// Ready reports whether a key set has been fetched.
func (k *Keyring) Ready() bool { return k.ready.Load() }

// Wait returns once a key set has been fetched (nil) or ctx is done (its error).
// Run or Verify does the fetching.
func (k *Keyring) Wait(ctx context.Context) error {
	select {
	case <-k.loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run fetches the key set until it succeeds, then again every RefreshPeriod, until ctx
// is done. Without Run, Verify still fetches lazily, but retired keys are dropped only
// when a token names an unknown kid.
func (k *Keyring) Run(ctx context.Context) {
	wait := 250 * time.Millisecond
	for {
		if err := k.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			k.log.Warn("fetch token keys", "err", err, "retry_in", wait)
		} else {
			wait = k.cfg.RefreshPeriod
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if !k.Ready() {
			wait = min(wait*2, 5*time.Second)
		}
	}
}

// Caller returns who the access token forwarded with the request in ctx
// (events.UserToken, see events.HeaderUserToken) speaks for, and makes *payloadUser,
// the user id in the request's payload, that user: an empty one is filled in, another
// one is refused. The errors are *events.Error: unauthenticated for a missing, bad or
// mismatched token (the gateway never sends those: only a forged call does, so each is
// logged), unavailable while no key set could be fetched.
func (k *Keyring) Caller(ctx context.Context, payloadUser *string) (Identity, error) {
	id, err := k.Verify(ctx, events.UserToken(ctx))
	switch {
	case errors.Is(err, ErrNoKeys):
		return Identity{}, events.ErrUnavailable
	case err != nil:
		k.log.WarnContext(ctx, "user request refused: no valid user token")
		return Identity{}, events.ErrUnauthenticated
	case *payloadUser != "" && *payloadUser != id.UserID:
		k.log.WarnContext(ctx, "user request refused: payload user is not the token's",
			"token_user", id.UserID, "payload_user", *payloadUser)
		return Identity{}, events.ErrUnauthenticated
	}
	*payloadUser = id.UserID
	return id, nil
}

// Verify checks token (see Verifier.Verify) and returns who it speaks for. Every
// reason for refusal is ErrInvalidToken, except ErrNoKeys while no key set could be
// fetched yet.
func (k *Keyring) Verify(ctx context.Context, token string) (Identity, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return Identity{}, ErrInvalidToken
	}
	key := sha256.Sum256([]byte(token))
	if id, ok := k.cache.get(key, k.now()); ok {
		return id, nil
	}
	if !k.Ready() {
		k.refetch(ctx, k.cfg.RetryInterval)
		if !k.Ready() {
			return Identity{}, ErrNoKeys
		}
	}
	gen := k.cache.generation()
	claims, err := k.verifier.Verify(token)
	if err != nil && k.verifier.UnknownKey(token) && k.refetch(ctx, k.cfg.RefetchInterval) {
		gen = k.cache.generation()
		claims, err = k.verifier.Verify(token)
	}
	if err != nil {
		return Identity{}, ErrInvalidToken
	}
	id := Identity{UserID: claims.Subject, SessionID: claims.SessionID, IssuedAt: claims.IssuedAt.Time}
	if claims.ExpiresAt != nil {
		id.ExpiresAt = claims.ExpiresAt.Time
	}
	k.cache.put(key, id, k.now(), gen)
	return id, nil
}

// refetch fetches the key set again unless one was fetched within every; it reports
// whether the set was fetched. Concurrent callers wait for the fetch in flight
// instead of starting their own.
func (k *Keyring) refetch(ctx context.Context, every time.Duration) bool {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if time.Since(k.lastFetch) < every {
		return false
	}
	if err := k.fetchLocked(ctx); err != nil {
		k.log.Warn("fetch token keys", "err", err, "request_id", events.RequestID(ctx))
		return false
	}
	return true
}

func (k *Keyring) fetch(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	return k.fetchLocked(ctx)
}

func (k *Keyring) fetchLocked(ctx context.Context) error {
	k.lastFetch = time.Now()
	ctx, cancel := context.WithTimeout(ctx, k.cfg.RequestTimeout)
	defer cancel()
	keys, err := k.source(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("auth service published no keys")
	}
	k.verifier.SetKeys(keys)
	if fp := keysFingerprint(keys); fp != k.keysFP {
		// A key may have gone: tokens it signed must be verified (and refused) again.
		k.keysFP = fp
		k.cache.clear()
	}
	if !k.ready.Swap(true) {
		close(k.loaded)
		k.log.Info("token keys loaded", "keys", len(keys))
	}
	return nil
}

// keysFingerprint identifies a key set, whatever its order.
func keysFingerprint(keys []events.PublicKey) [sha256.Size]byte {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k.KID+"\x00"+k.Alg+"\x00"+string(k.Key))
	}
	slices.Sort(parts)
	return sha256.Sum256([]byte(strings.Join(parts, "\x01")))
}

// maxCachedTokens bounds the verified-token cache (about 150 bytes an entry).
const maxCachedTokens = 50_000

// tokenCache keeps the identities of tokens whose signature and claims were verified,
// keyed by the token's SHA-256, until the token's exp. Its generation changes on every
// clear, so a verification that raced a key-set change is not stored.
type tokenCache struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]Identity
	gen uint64
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]Identity)}
}

// get returns the identity of a token verified before, unless it has expired by now.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.RLock()
	id, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || !now.Before(id.ExpiresAt) {
		return Identity{}, false
	}
	return id, true
}

func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put remembers a verified token's identity, unless the cache was cleared since gen
// was read; tokens without an expiry are not kept.
func (c *tokenCache) put(key [sha256.Size]byte, id Identity, now time.Time, gen uint64) {
	if id.ExpiresAt.IsZero() || !now.Before(id.ExpiresAt) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxCachedTokens {
		for k, q := range c.m {
			if !now.Before(q.ExpiresAt) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: drop arbitrary entries (they are verified again)
			if len(c.m) < maxCachedTokens*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = id
}

// clear forgets every entry.
func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
