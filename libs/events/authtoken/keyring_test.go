package authtoken

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// fakeAuth is a key source whose answer the test changes; it counts the fetches.
type fakeAuth struct {
	mu      sync.Mutex
	keys    []events.PublicKey
	down    bool
	fetches int
}

func (f *fakeAuth) source(context.Context) ([]events.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	if f.down {
		return nil, events.ErrUnavailable
	}
	return f.keys, nil
}

func (f *fakeAuth) set(down bool, keys ...events.PublicKey) {
	f.mu.Lock()
	f.down, f.keys = down, keys
	f.mu.Unlock()
}

func (f *fakeAuth) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

type testKey struct {
	kid  string
	pub  events.PublicKey
	priv ed25519.PrivateKey
}

func newTestKey(t *testing.T, kid string) testKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, pub: events.PublicKey{KID: kid, Alg: events.TokenAlg, Key: pub}, priv: priv}
}

func (k testKey) token(user string, iat time.Time) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(map[string]string{"alg": "EdDSA", "typ": events.TokenType, "kid": k.kid}) + "." + enc(map[string]any{
		"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": user, "sid": "s-" + user, "jti": user + iat.String(),
		"iat": iat.Unix(), "exp": iat.Add(10 * time.Minute).Unix(),
	})
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.priv, []byte(in)))
}

func newTestKeyring(auth *fakeAuth) *Keyring {
	return NewKeyringFunc(auth.source, slog.New(slog.DiscardHandler), KeyringConfig{RetryInterval: time.Millisecond, RefetchInterval: time.Hour})
}

// TestKeyringLazyStart: while auth has not answered, Verify says ErrNoKeys (not an
// invalid token); once auth answers, the next Verify fetches the keys itself.
func TestKeyringLazyStart(t *testing.T) {
	k1 := newTestKey(t, "k1")
	auth := &fakeAuth{down: true}
	k := newTestKeyring(auth)
	ctx := context.Background()
	tok := k1.token("ua", time.Now())
	if _, err := k.Verify(ctx, tok); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("auth down: %v, want ErrNoKeys", err)
	}
	if _, err := k.Verify(ctx, ""); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("no token while auth is down: %v, want ErrInvalidToken", err)
	}
	auth.set(false, k1.pub)
	time.Sleep(2 * time.Millisecond)
	id, err := k.Verify(ctx, tok)
	if err != nil || id.UserID != "ua" || id.SessionID != "s-ua" || !k.Ready() {
		t.Fatalf("auth up: %+v %v ready=%v", id, err, k.Ready())
	}
}

// TestKeyringWait: Wait blocks while auth is down (until its ctx ends) and returns
// once Run has fetched a key set.
func TestKeyringWait(t *testing.T) {
	k1 := newTestKey(t, "k1")
	auth := &fakeAuth{down: true}
	k := newTestKeyring(auth)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := k.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("auth down: Wait = %v, want deadline exceeded", err)
	}
	auth.set(false, k1.pub)
	long, stop2 := context.WithTimeout(ctx, 10*time.Second)
	defer stop2()
	if err := k.Wait(long); err != nil || !k.Ready() {
		t.Fatalf("auth up: Wait = %v, ready=%v", err, k.Ready())
	}
}

// TestKeyringCache: a verified token is not verified again until its exp (it still
// passes with its key gone from the verifier), past its exp it is verified again, and a
// changed key set empties the cache.
func TestKeyringCache(t *testing.T) {
	k1, k2 := newTestKey(t, "k1"), newTestKey(t, "k2")
	auth := &fakeAuth{keys: []events.PublicKey{k1.pub}}
	k := newTestKeyring(auth)
	ctx := context.Background()
	now := time.Now()
	tokA, tokB := k1.token("ua", now), k1.token("ub", now)
	for _, tok := range []string{tokA, tokB} {
		if _, err := k.Verify(ctx, tok); err != nil {
			t.Fatalf("first verify: %v", err)
		}
	}
	if n := k.cache.len(); n != 2 {
		t.Fatalf("%d cached tokens, want 2", n)
	}
	k.verifier.SetKeys(nil) // only the cache can accept them now
	if id, err := k.Verify(ctx, tokA); err != nil || id.UserID != "ua" {
		t.Fatalf("cached token: %+v %v", id, err)
	}
	if _, err := k.Verify(ctx, k1.token("uc", now)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("uncached token without its key: %v", err)
	}
	k.now = func() time.Time { return now.Add(10*time.Minute + time.Second) }
	if _, err := k.Verify(ctx, tokA); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("cached token past its exp: %v", err)
	}
	k.now = time.Now

	// A token of an unknown kid makes the keyring fetch again: k1 is retired, k2 new.
	k.verifier.SetKeys([]events.PublicKey{k1.pub})
	auth.set(false, k2.pub)
	k.cfg.RefetchInterval = 0
	if _, err := k.Verify(ctx, k2.token("ud", now)); err != nil {
		t.Fatalf("token of a new key: %v", err)
	}
	if _, err := k.Verify(ctx, tokB); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("cached token of a retired key: %v", err)
	}
}

// TestKeyringRefetchRateLimited: unknown kids cause at most one fetch per
// RefetchInterval.
func TestKeyringRefetchRateLimited(t *testing.T) {
	k1, k2 := newTestKey(t, "k1"), newTestKey(t, "k2")
	auth := &fakeAuth{keys: []events.PublicKey{k1.pub}}
	k := newTestKeyring(auth)
	ctx := context.Background()
	if _, err := k.Verify(ctx, k1.token("ua", time.Now())); err != nil {
		t.Fatal(err)
	}
	before := auth.count()
	for i := range 20 {
		if _, err := k.Verify(ctx, k2.token("ub", time.Now().Add(time.Duration(i)*time.Second))); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("token of an unknown key: %v", err)
		}
	}
	if n := auth.count() - before; n != 0 {
		t.Errorf("%d fetches within the refetch interval, want 0", n)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	key := func(s string) [32]byte {
		var k [32]byte
		copy(k[:], s)
		return k
	}
	for i := range maxCachedTokens + 100 {
		c.put(key(string(rune(i))+"x"), Identity{UserID: "u", ExpiresAt: now.Add(time.Minute)}, now, 0)
	}
	if n := c.len(); n > maxCachedTokens {
		t.Errorf("%d entries, at most %d", n, maxCachedTokens)
	}
	c.put(key("expired"), Identity{ExpiresAt: now.Add(-time.Second)}, now, 0)
	if _, ok := c.get(key("expired"), now); ok {
		t.Error("an expired token was kept")
	}
	gen := c.generation()
	c.clear()
	c.put(key("raced"), Identity{ExpiresAt: now.Add(time.Minute)}, now, gen)
	if _, ok := c.get(key("raced"), now); ok {
		t.Error("a token verified before the key set changed was kept")
	}
}
