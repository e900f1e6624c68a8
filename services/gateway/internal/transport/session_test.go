package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/libs/events"
)

func ed25519GenerateKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return pub, priv, nil
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hs256 signs claims with HMAC keyed by the Ed25519 public key: the classic
// algorithm-confusion forgery.
func hs256(t *testing.T, pub ed25519.PublicKey, c claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = testKID
	tok.Header["typ"] = events.TokenType
	s, err := tok.SignedString([]byte(pub))
	if err != nil {
		t.Fatalf("sign hs256: %v", err)
	}
	return s
}

// waitStatus polls a request until it answers want.
func (f *fixture) waitStatus(q req, want int) resp {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f.do(q)
		if got.status == want || time.Now().After(deadline) {
			if got.status != want {
				f.t.Fatalf("%s %s: status = %d, want %d", q.method, q.path, got.status, want)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRevocation(t *testing.T) {
	f := newFixture(t, Options{})
	kv, err := f.js.KeyValue(context.Background(), events.BucketRevokedSessions)
	if err != nil {
		t.Fatalf("the gateway should have created the bucket: %v", err)
	}
	probe := func(tok string) req {
		return req{method: "GET", path: "/api/chats/no.such.id", headers: map[string]string{"Authorization": "Bearer " + tok}}
	}
	withSession := func(user, sid string, iat time.Time) string {
		c := goodClaims()
		c["sub"], c["sid"], c["iat"] = user, sid, iat.Unix()
		return f.token(c)
	}
	now := time.Now()

	t.Run("session revoked in the bucket", func(t *testing.T) {
		tok := withSession("u-a", "sid-a", now)
		f.waitStatus(probe(tok), http.StatusNotFound)
		if _, err := kv.PutString(context.Background(), "sid-a", time.Now().UTC().Format(time.RFC3339)); err != nil {
			t.Fatal(err)
		}
		f.waitStatus(probe(tok), http.StatusUnauthorized)
		// Another session of the same user is unaffected.
		f.waitStatus(probe(withSession("u-a", "sid-a2", now)), http.StatusNotFound)
	})

	t.Run("user logged out everywhere", func(t *testing.T) {
		old := withSession("u-b", "sid-b1", now.Add(-time.Minute))
		f.waitStatus(probe(old), http.StatusNotFound)
		if _, err := kv.PutString(context.Background(), "user_u-b", now.Add(-30*time.Second).UTC().Format(time.RFC3339Nano)); err != nil {
			t.Fatal(err)
		}
		f.waitStatus(probe(old), http.StatusUnauthorized)
		// Issued after the cut-off: still good.
		f.waitStatus(probe(withSession("u-b", "sid-b2", now)), http.StatusNotFound)
		// Other users: unaffected.
		f.waitStatus(probe(withSession("u-c", "sid-c", now.Add(-time.Minute))), http.StatusNotFound)
	})

	t.Run("local logout applies at once", func(t *testing.T) {
		tok := withSession("u-d", "sid-d", now)
		f.waitStatus(probe(tok), http.StatusNotFound)
		got := f.do(req{method: "POST", path: "/api/auth/logout", headers: map[string]string{"Authorization": "Bearer " + tok}})
		// Auth does not answer in this fixture, so logout reports it; the session is
		// refused on this replica all the same.
		if got.status != http.StatusServiceUnavailable {
			t.Fatalf("logout status = %d (%s)", got.status, got.body)
		}
		if got.header.Get("Clear-Site-Data") != `"cookies"` {
			t.Errorf("Clear-Site-Data = %q", got.header.Get("Clear-Site-Data"))
		}
		cleared := map[string]bool{}
		for _, c := range (&http.Response{Header: got.header}).Cookies() {
			if c.MaxAge < 0 && c.Value == "" && c.HttpOnly && c.SameSite == http.SameSiteStrictMode {
				cleared[c.Name] = true
			}
		}
		if !cleared[cookieAccess] || !cleared[cookieRefresh] {
			t.Errorf("cookies not cleared: %v", got.header.Values("Set-Cookie"))
		}
		if got := f.do(probe(tok)); got.status != http.StatusUnauthorized {
			t.Fatalf("after logout: status = %d, want 401", got.status)
		}
	})

	t.Run("cookie failure clears cookies", func(t *testing.T) {
		got := f.do(req{method: "GET", path: "/api/chats/no.such.id", headers: map[string]string{"Cookie": cookieAccess + "=garbage"}})
		if got.status != http.StatusUnauthorized {
			t.Fatalf("status = %d", got.status)
		}
		if !strings.Contains(strings.Join(got.header.Values("Set-Cookie"), "\n"), cookieAccess+"=;") {
			t.Errorf("access cookie not cleared: %v", got.header.Values("Set-Cookie"))
		}
	})
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t, Options{SendRate: 2, AuthRate: 2})
	bearer := map[string]string{"Authorization": "Bearer " + f.token(goodClaims()), "Content-Type": "application/json"}
	send := req{"POST", "/api/chats/c1/messages", `{"content":"hi"}`, bearer}
	for i := range 2 {
		if got := f.do(send); got.status != http.StatusServiceUnavailable {
			t.Fatalf("send %d: status = %d", i, got.status)
		}
	}
	got := f.do(send)
	if got.status != http.StatusTooManyRequests || got.code() != events.CodeRateLimited || got.header.Get("Retry-After") == "" {
		t.Fatalf("third send: %d %s Retry-After=%q", got.status, got.code(), got.header.Get("Retry-After"))
	}
	// Another user has a budget of their own.
	other := goodClaims()
	other["sub"] = "u2"
	bearer2 := map[string]string{"Authorization": "Bearer " + f.token(other), "Content-Type": "application/json"}
	if got := f.do(req{"POST", "/api/chats/c1/messages", `{"content":"hi"}`, bearer2}); got.status != http.StatusServiceUnavailable {
		t.Fatalf("other user's send: status = %d", got.status)
	}

	login := req{"POST", "/api/auth/login", `{"username":"a","password":"b"}`, jsonHeaders(nil)}
	for i := range 2 {
		if got := f.do(login); got.status != http.StatusServiceUnavailable {
			t.Fatalf("login %d: status = %d", i, got.status)
		}
	}
	if got := f.do(login); got.status != http.StatusTooManyRequests || got.code() != events.CodeRateLimited {
		t.Fatalf("third login: %d %s", got.status, got.code())
	}
}
