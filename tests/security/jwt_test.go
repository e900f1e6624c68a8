package security_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// b64 is base64url without padding, as JWTs use.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(v any) string {
	b, _ := json.Marshal(v)
	return b64(b)
}

// forge builds a JWT from a header and claims, signed by sign over "header.payload".
func forge(header, claims map[string]any, sign func(input []byte) []byte) string {
	input := b64JSON(header) + "." + b64JSON(claims)
	return input + "." + b64(sign([]byte(input)))
}

// liveKey reads the auth service's current signing key from its table (as an attacker
// who stole the database could; the tests use it to make tokens that are validly signed
// but wrong in one claim, which only the gateway's claim checks can refuse).
func liveKey(t *testing.T, s *stack) (string, ed25519.PrivateKey) {
	t.Helper()
	var kid string
	var priv []byte
	err := s.db.Admin.QueryRow("SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1").Scan(&kid, &priv)
	if err != nil {
		t.Fatalf("read signing key: %v", err)
	}
	return kid, ed25519.PrivateKey(priv)
}

// testJWTTampering: drill (f). Every forged or tampered token gets the same 401 body;
// a control token made the same way but correct gets 200.
func testJWTTampering(t *testing.T, s *stack) {
	s.use(t)
	u := s.user("jwt_victim", false)
	kid, key := liveKey(t, s)
	pub := key.Public().(ed25519.PublicKey)
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)

	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": u.User.ID, "sid": userSession(t, u.Session),
			"jti": randomHex(16), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	header := func(edit func(map[string]any)) map[string]any {
		h := map[string]any{"alg": "EdDSA", "typ": events.TokenType, "kid": kid}
		if edit != nil {
			edit(h)
		}
		return h
	}
	signWith := func(k ed25519.PrivateKey) func([]byte) []byte {
		return func(in []byte) []byte { return ed25519.Sign(k, in) }
	}
	real := signWith(key)
	none := func([]byte) []byte { return nil }
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }

	control := forge(header(nil), claims(nil), real)
	probe := s.NewClient(&http.Client{Timeout: 10 * time.Second}, "")
	probe.Token = control
	probe.Call("GET", "/api/auth/me", nil, http.StatusOK, nil)

	parts := strings.Split(u.Token, ".")
	edited := claims(set("sub", "0190aaaa-0000-7000-8000-000000000000"))
	jwk := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(foreign.Public().(ed25519.PublicKey))}
	cases := map[string]string{
		"alg none":                 forge(header(set("alg", "none")), claims(nil), none),
		"alg None":                 forge(header(set("alg", "None")), claims(nil), none),
		"alg nOnE":                 forge(header(set("alg", "nOnE")), claims(nil), none),
		"alg none, no signature":   b64JSON(header(set("alg", "none"))) + "." + b64JSON(claims(nil)) + ".",
		"HS256 with the pub key":   forge(header(set("alg", "HS256")), claims(nil), func(in []byte) []byte { m := hmac.New(sha256.New, pub); m.Write(in); return m.Sum(nil) }),
		"foreign key, reused kid":  forge(header(nil), claims(nil), signWith(foreign)),
		"foreign key, unknown kid": forge(header(set("kid", "attacker-key")), claims(nil), signWith(foreign)),
		"no kid":                   forge(header(del("kid")), claims(nil), real),
		"jwk injected":             forge(header(func(m map[string]any) { m["jwk"] = jwk; m["kid"] = "attacker-key" }), claims(nil), signWith(foreign)),
		"jku injected":             forge(header(func(m map[string]any) { m["jku"] = "https://evil.example/keys"; m["kid"] = "attacker-key" }), claims(nil), signWith(foreign)),
		"x5u injected":             forge(header(func(m map[string]any) { m["x5u"] = "https://evil.example/cert"; m["kid"] = "attacker-key" }), claims(nil), signWith(foreign)),
		"expired beyond leeway": forge(header(nil), claims(func(m map[string]any) {
			m["iat"] = now.Add(-20 * time.Minute).Unix()
			m["exp"] = now.Add(-time.Minute).Unix()
		}), real),
		"no exp":              forge(header(nil), claims(del("exp")), real),
		"future nbf":          forge(header(nil), claims(set("nbf", now.Add(5*time.Minute).Unix())), real),
		"future iat":          forge(header(nil), claims(set("iat", now.Add(5*time.Minute).Unix())), real),
		"wrong aud":           forge(header(nil), claims(set("aud", "someone-else")), real),
		"no aud":              forge(header(nil), claims(del("aud")), real),
		"wrong iss":           forge(header(nil), claims(set("iss", "evil")), real),
		"no iss":              forge(header(nil), claims(del("iss")), real),
		"typ JWT":             forge(header(set("typ", "JWT")), claims(nil), real),
		"no typ":              forge(header(del("typ")), claims(nil), real),
		"no sub":              forge(header(nil), claims(del("sub")), real),
		"no sid":              forge(header(nil), claims(del("sid")), real),
		"payload edited":      parts[0] + "." + b64JSON(edited) + "." + parts[2],
		"signature zeroed":    parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)),
		"two parts":           parts[0] + "." + parts[1],
		"four parts":          u.Token + "." + parts[2],
		"padded parts":        parts[0] + "==." + parts[1] + "." + parts[2],
		"standard base64":     strings.ReplaceAll(strings.ReplaceAll(u.Token, "-", "+"), "_", "/") + "+/",
		"dots":                strings.Repeat(".", 4000),
		"over the size limit": u.Token + strings.Repeat("A", authtoken.MaxTokenBytes),
		"garbage":             "garbage",
	}
	var first string
	for name, tok := range cases {
		for _, via := range []string{"bearer", "cookie"} {
			c := s.NewClient(&http.Client{Timeout: 10 * time.Second}, "")
			var h http.Header
			if via == "bearer" {
				c.Token = tok
			} else {
				h = http.Header{"Cookie": {"parley_at=" + tok}}
			}
			res := c.Raw("GET", "/api/auth/me", nil, h)
			if res.Status != http.StatusUnauthorized {
				t.Errorf("%s (%s): %d %s, want 401", name, via, res.Status, res.Body)
				continue
			}
			if first == "" {
				first = string(res.Body)
			} else if string(res.Body) != first {
				t.Errorf("%s (%s): body %s differs from %s", name, via, res.Body, first)
			}
		}
	}
	// A 1 MB token of dots does not even reach the token parser: the header limit.
	big := s.NewClient(&http.Client{Timeout: 10 * time.Second}, strings.Repeat(".", 1<<20))
	if res := big.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1 MB bearer: %d, want 431", res.Status)
	}
}

// userSession returns the session id in the access token of a login reply.
func userSession(t *testing.T, l loginReply) string {
	t.Helper()
	parts := strings.Split(l.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.SID == "" {
		t.Fatalf("no sid in %s", raw)
	}
	return c.SID
}

// tokenKID returns the kid in a token's header.
func tokenKID(t *testing.T, token string) string {
	t.Helper()
	kid, ok := authtoken.KeyID(token)
	if !ok {
		t.Fatalf("no kid in %s", token)
	}
	return kid
}

// testSessionRevocation: drill (f), the session half. Tokens stop working at once after
// logout and log-out-everywhere; a replayed rotated refresh token ends the session and
// its successor with it.
func testSessionRevocation(t *testing.T, s *stack) {
	s.use(t)
	name := "rev_" + randomHex(3)
	s.SignUp(name)

	// Logout: the access token and the refresh token are dead at once.
	a := s.LogIn(name, false)
	a.Call("GET", "/api/auth/me", nil, http.StatusOK, nil)
	a.Call("POST", "/api/auth/logout", nil, http.StatusNoContent, nil)
	if res := a.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("access token after logout: %d", res.Status)
	}
	if res := s.NewBrowser().Raw("POST", "/api/auth/refresh", mustJSON(map[string]string{"refresh_token": a.Session.RefreshToken}), nil); res.Status != http.StatusUnauthorized {
		t.Errorf("refresh token after logout: %d", res.Status)
	}

	// Refresh reuse after the grace window: the whole session ends.
	b := s.LogIn(name, false)
	r0 := b.Session.RefreshToken
	var s1 loginReply
	s.NewBrowser().Call("POST", "/api/auth/refresh", map[string]string{"refresh_token": r0}, http.StatusOK, &s1)
	time.Sleep(s.AuthConfig.RefreshReuseGrace + 500*time.Millisecond)
	if res := s.NewBrowser().Raw("POST", "/api/auth/refresh", mustJSON(map[string]string{"refresh_token": r0}), nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("replayed refresh token: %d %s", res.Status, res.Body)
	}
	if res := s.NewBrowser().Raw("POST", "/api/auth/refresh", mustJSON(map[string]string{"refresh_token": s1.RefreshToken}), nil); res.Status != http.StatusUnauthorized {
		t.Errorf("successor of a replayed refresh token: %d %s", res.Status, res.Body)
	}
	succ := s.NewClient(&http.Client{Timeout: 10 * time.Second}, s1.AccessToken)
	e2e.Eventually(t, time.Second, "access token of the revoked family refused", func() error {
		if res := succ.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
			return fmt.Errorf("status %d", res.Status)
		}
		return nil
	})

	// Log out everywhere: browser and bearer sessions of the user all end.
	browser := s.LogIn(name, true)
	other := s.LogIn(name, false)
	browser.Call("POST", "/api/auth/logout-all", nil, http.StatusNoContent, nil)
	if res := other.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("other session after logout-all: %d", res.Status)
	}
	if res := s.NewBrowser().Raw("POST", "/api/auth/refresh", mustJSON(map[string]string{"refresh_token": other.Session.RefreshToken}), nil); res.Status != http.StatusUnauthorized {
		t.Errorf("other session's refresh token after logout-all: %d", res.Status)
	}
	// A new login after it works.
	s.LogIn(name, false).Call("GET", "/api/auth/me", nil, http.StatusOK, nil)
}

// testKeyRotation: restarting auth with AUTH_ROTATE_KEY=true signs new tokens with a
// new kid while tokens of the old key keep working until they expire; nobody is
// logged out.
func testKeyRotation(t *testing.T, s *stack) {
	s.use(t)
	old := s.user("rot", false)
	browser := s.LogIn(old.User.Username, true)
	oldKID := tokenKID(t, old.Token)

	s.Auth.Stop()
	s.AuthConfig.RotateKey = true
	s.Auth.Start()
	defer func() { s.AuthConfig.RotateKey = false }()
	s.WaitReady(30 * time.Second)

	var fresh *client
	e2e.Eventually(t, 20*time.Second, "login after rotation", func() error {
		c := s.NewBrowser()
		res := c.Raw("POST", "/api/auth/login", mustJSON(map[string]string{"username": old.User.Username, "password": password}), nil)
		if res.Status != http.StatusOK {
			return fmt.Errorf("login: %d %s", res.Status, res.Body)
		}
		var rep loginReply
		_ = json.Unmarshal(res.Body, &rep)
		fresh = s.NewClient(&http.Client{Timeout: 10 * time.Second}, rep.AccessToken)
		fresh.User, fresh.Session = rep.User, rep
		return nil
	})
	if newKID := tokenKID(t, fresh.Token); newKID == oldKID {
		t.Fatalf("new tokens still signed with kid %s", oldKID)
	}
	// The gateway learns the new key on the first token that names it (its refetch is
	// rate-limited, hence eventually).
	e2e.Eventually(t, 15*time.Second, "token of the new key accepted", func() error {
		if res := fresh.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusOK {
			return fmt.Errorf("status %d", res.Status)
		}
		return nil
	})
	old.Call("GET", "/api/auth/me", nil, http.StatusOK, nil)
	browser.Call("GET", "/api/chats", nil, http.StatusOK, nil)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
