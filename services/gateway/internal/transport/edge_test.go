package transport

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/events"
)

func TestRequestBodies(t *testing.T) {
	f := newFixture(t, Options{})
	bearer := map[string]string{"Authorization": "Bearer " + f.token(goodClaims()), "Content-Type": "application/json"}
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)

	tests := []struct {
		name     string
		req      req
		status   int
		code     string
		reachesN bool // the request reaches a service (which does not answer: 503)
	}{
		{"valid login", req{"POST", "/api/auth/login", `{"username":"ann","password":"x"}`, jsonHeaders(nil)}, 503, events.CodeUnavailable, true},
		{"unknown fields ignored", req{"POST", "/api/auth/login", `{"username":"ann","password":"x","extra":{"a":[1]}}`, jsonHeaders(nil)}, 503, events.CodeUnavailable, true},
		{"charset utf-8", req{"POST", "/api/auth/login", `{}`, jsonHeaders(map[string]string{"Content-Type": "application/json; charset=UTF-8"})}, 503, events.CodeUnavailable, true},
		{"malformed", req{"POST", "/api/auth/login", `{"username":`, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"trailing garbage", req{"POST", "/api/auth/login", `{"username":"a"} x`, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"two objects", req{"POST", "/api/auth/login", `{"username":"a"}{"username":"b"}`, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"wrong type", req{"POST", "/api/auth/login", `{"username":1}`, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"array", req{"POST", "/api/auth/login", `[]`, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"deep nesting", req{"POST", "/api/auth/login", deep, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"invalid utf-8", req{"POST", "/api/auth/login", "{\"username\":\"a\xff\xfe\"}", jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"empty body", req{"POST", "/api/auth/signup", ``, jsonHeaders(nil)}, 400, events.CodeInvalidJSON, false},
		{"over 64 KiB", req{"POST", "/api/auth/login", `{"username":"` + strings.Repeat("a", 64<<10) + `"}`, jsonHeaders(nil)}, 413, events.CodePayloadTooLarge, false},
		{"text/plain", req{"POST", "/api/auth/login", `{}`, jsonHeaders(map[string]string{"Content-Type": "text/plain"})}, 415, events.CodeUnsupportedMedia, false},
		{"form", req{"POST", "/api/auth/login", `a=b`, jsonHeaders(map[string]string{"Content-Type": "application/x-www-form-urlencoded"})}, 415, events.CodeUnsupportedMedia, false},
		{"latin1 json", req{"POST", "/api/auth/login", `{}`, jsonHeaders(map[string]string{"Content-Type": "application/json; charset=latin1"})}, 415, events.CodeUnsupportedMedia, false},
		{"no content type", req{"POST", "/api/auth/login", `{}`, map[string]string{headerCSRF: "1"}}, 415, events.CodeUnsupportedMedia, false},

		{"send ok", req{"POST", "/api/chats/c1/messages", `{"content":"hello"}`, bearer}, 503, events.CodeUnavailable, true},
		{"send max length", req{"POST", "/api/chats/c1/messages", `{"content":"` + strings.Repeat("é", events.MaxMessageChars) + `"}`, bearer}, 503, events.CodeUnavailable, true},
		{"send blank", req{"POST", "/api/chats/c1/messages", `{"content":" \n\t "}`, bearer}, 400, events.CodeInvalidInput, false},
		{"send empty", req{"POST", "/api/chats/c1/messages", `{"content":""}`, bearer}, 400, events.CodeInvalidInput, false},
		{"send missing", req{"POST", "/api/chats/c1/messages", `{}`, bearer}, 400, events.CodeInvalidInput, false},
		{"send too long", req{"POST", "/api/chats/c1/messages", `{"content":"` + strings.Repeat("a", events.MaxMessageChars+1) + `"}`, bearer}, 400, events.CodeInvalidInput, false},
		{"send NUL", req{"POST", "/api/chats/c1/messages", `{"content":"a\u0000b"}`, bearer}, 400, events.CodeInvalidInput, false},
		{"send long client id", req{"POST", "/api/chats/c1/messages", `{"content":"hi","client_message_id":"` + strings.Repeat("k", 65) + `"}`, bearer}, 400, events.CodeInvalidInput, false},
		{"send bad chat id", req{"POST", "/api/chats/c1.x/messages", `{"content":"hi"}`, bearer}, 404, events.CodeNotFound, false},
		{"title too long", req{"POST", "/api/chats", `{"title":"` + strings.Repeat("t", events.MaxTitleChars+1) + `"}`, bearer}, 400, events.CodeInvalidInput, false},
		{"create chat without body", req{"POST", "/api/chats", ``, bearer}, 503, events.CodeUnavailable, true},
		{"bad limit", req{"GET", "/api/chats?limit=abc", ``, bearer}, 400, events.CodeInvalidInput, false},
		{"zero limit", req{"GET", "/api/chats?limit=0", ``, bearer}, 400, events.CodeInvalidInput, false},
		{"huge limit clamped", req{"GET", "/api/chats?limit=100000", ``, bearer}, 503, events.CodeUnavailable, true},
		{"long query", req{"GET", "/api/chats?q=" + strings.Repeat("q", maxQueryLen+1), ``, bearer}, 400, events.CodeInvalidInput, false},
		{"bad export format", req{"GET", "/api/chats/c1/export?format=pdf", ``, bearer}, 400, events.CodeInvalidInput, false},
		{"bad after", req{"GET", "/api/messages/m1/stream?after=x", ``, bearer}, 400, events.CodeInvalidInput, false},
		{"unknown api route", req{"GET", "/api/nope", ``, bearer}, 404, events.CodeNotFound, false},
		{"unknown api route unauthenticated", req{"POST", "/api/chats/c1/nope", ``, jsonHeaders(nil)}, 404, events.CodeNotFound, false},
		{"wrong method", req{"PUT", "/api/chats", ``, bearer}, 405, events.CodeMethodNotAllowed, false},
		{"wrong method on health", req{"POST", "/healthz", ``, nil}, 405, events.CodeMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.toChat.Load() + f.toAuth.Load()
			got := f.do(tt.req)
			if got.status != tt.status || got.code() != tt.code {
				t.Fatalf("got %d %s, want %d %s (body %.200s)", got.status, got.code(), tt.status, tt.code, got.body)
			}
			if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			// Give a request that did reach NATS time to be counted.
			if err := f.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			reached := f.toChat.Load()+f.toAuth.Load() > before
			if reached != tt.reachesN {
				t.Errorf("reached a service = %v, want %v", reached, tt.reachesN)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t, Options{})
	tok := f.token(goodClaims())
	cookie := map[string]string{"Cookie": cookieAccess + "=" + tok}
	with := func(base map[string]string, kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range base {
			h[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	host := strings.TrimPrefix(f.http.URL, "http://")
	json := map[string]string{"Content-Type": "application/json"}
	cookieJSON := with(cookie, "Content-Type", "application/json")
	bearerJSON := with(json, "Authorization", "Bearer "+tok)

	tests := []struct {
		name   string
		req    req
		status int
	}{
		{"login without header", req{"POST", "/api/auth/login", `{}`, json}, 403},
		{"login with header", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1")}, 503},
		{"login header not 1", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "yes")}, 403},
		{"login cross-site", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1", "Sec-Fetch-Site", "cross-site")}, 403},
		{"login same-site sibling", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1", "Sec-Fetch-Site", "same-site")}, 403},
		{"login same-origin", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1", "Sec-Fetch-Site", "same-origin", "Origin", "http://"+host)}, 503},
		{"login foreign origin", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1", "Origin", "https://evil.example")}, 403},
		{"login null origin", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1", "Origin", "null")}, 403},
		{"login own origin", req{"POST", "/api/auth/login", `{}`, with(json, headerCSRF, "1", "Origin", "http://"+host)}, 503},
		{"signup without header", req{"POST", "/api/auth/signup", `{}`, json}, 403},
		{"refresh without header", req{"POST", "/api/auth/refresh", `{}`, json}, 403},
		{"signup bearer still needs header", req{"POST", "/api/auth/signup", `{}`, bearerJSON}, 403},

		{"cookie post without header", req{"POST", "/api/chats", `{}`, cookieJSON}, 403},
		{"cookie post with header", req{"POST", "/api/chats", `{}`, with(cookieJSON, headerCSRF, "1")}, 503},
		{"cookie post cross-site", req{"POST", "/api/chats", `{}`, with(cookieJSON, headerCSRF, "1", "Sec-Fetch-Site", "cross-site")}, 403},
		{"cookie post foreign origin", req{"POST", "/api/chats", `{}`, with(cookieJSON, headerCSRF, "1", "Origin", "https://evil.example")}, 403},
		{"cookie patch without header", req{"PATCH", "/api/chats/c1", `{}`, cookieJSON}, 403},
		{"cookie delete without header", req{"DELETE", "/api/chats/c1", ``, cookie}, 403},
		{"cookie logout without header", req{"POST", "/api/auth/logout", ``, cookie}, 403},
		{"cookie get without header", req{"GET", "/api/chats", ``, cookie}, 503},
		{"cookie get cross-site", req{"GET", "/api/chats", ``, with(cookie, "Sec-Fetch-Site", "cross-site")}, 503},
		{"bearer post without header", req{"POST", "/api/chats", `{}`, bearerJSON}, 503},
		{"bearer post cross-site", req{"POST", "/api/chats", `{}`, with(bearerJSON, "Sec-Fetch-Site", "cross-site")}, 503},
		{"no credentials, no header", req{"POST", "/api/chats", `{}`, json}, 403},
		{"no credentials, header", req{"POST", "/api/chats", `{}`, with(json, headerCSRF, "1")}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := f.do(tt.req)
			if got.status != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", got.status, tt.status, got.body)
			}
			if tt.status == 403 && got.code() != events.CodeCSRFRejected {
				t.Errorf("code = %q, want %q", got.code(), events.CodeCSRFRejected)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, Options{})
	want := map[string]string{
		"Content-Security-Policy":    contentSecurityPolicy,
		"X-Content-Type-Options":     "nosniff",
		"Referrer-Policy":            "strict-origin-when-cross-origin",
		"X-Frame-Options":            "DENY",
		"Cross-Origin-Opener-Policy": "same-origin",
	}
	for _, path := range []string{"/", "/chats/abc", "/healthz", "/api/nope", "/api/chats", "/api/auth/me", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			got := f.do(req{method: "GET", path: path})
			for k, v := range want {
				if g := got.header.Get(k); g != v {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
			if s := got.header.Get("Server"); s != "" {
				t.Errorf("Server header = %q, want none", s)
			}
			if got.header.Get("Strict-Transport-Security") != "" {
				t.Errorf("HSTS on plain HTTP without COOKIE_SECURE")
			}
			if strings.HasPrefix(path, "/api/") && got.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got.header.Get("Cache-Control"))
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name string
		sent string
		echo bool
	}{
		{"sane", "abc-123_x.y", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"65 chars", strings.Repeat("a", 65), false},
		{"bad chars", "abc def", false},
		{"injection", "a\r\nSet-Cookie: x=y", false},
		{"none", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/healthz", "/api/auth/me", "/api/nope"} {
				h := map[string]string{}
				if tt.sent != "" && !strings.ContainsAny(tt.sent, "\r\n") {
					h[events.HeaderRequestID] = tt.sent
				}
				got := f.do(req{method: "GET", path: path, headers: h}).header.Get(events.HeaderRequestID)
				if tt.echo && got != tt.sent {
					t.Errorf("%s: X-Request-Id = %q, want %q", path, got, tt.sent)
				}
				if !tt.echo && (got == "" || got == tt.sent || !saneRequestID(got)) {
					t.Errorf("%s: X-Request-Id = %q, want a fresh sane id", path, got)
				}
			}
		})
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t, Options{})
	_, foreign, _ := ed25519GenerateKey(t)
	now := time.Now()
	edit := func(change func(claims)) claims {
		c := goodClaims()
		change(c)
		return c
	}
	good := f.token(goodClaims())
	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + b64(`{"iss":"`+events.TokenIssuer+`","aud":"`+events.TokenAudience+`","sub":"admin","sid":"s1","jti":"x","iat":`+
		strconv.FormatInt(now.Unix(), 10)+`,"exp":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`) + "." + parts[2]
	unsigned := func(alg string) string {
		return b64(`{"alg":"`+alg+`","kid":"`+testKID+`","typ":"at+jwt"}`) + "." + strings.Split(good, ".")[1] + "."
	}

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", good, true},
		{"valid lowercase scheme", good, true},
		{"alg none", unsigned("none"), false},
		{"alg None", unsigned("None"), false},
		{"alg nOnE", unsigned("nOnE"), false},
		{"HS256 with public key bytes", hs256(t, f.pub, goodClaims()), false},
		{"foreign key reusing kid", f.signWith(foreign, goodClaims(), map[string]any{"kid": testKID, "typ": events.TokenType}), false},
		{"unknown kid", f.signWith(f.priv, goodClaims(), map[string]any{"kid": "other", "typ": events.TokenType}), false},
		{"jku injection", f.signWith(foreign, goodClaims(), map[string]any{"kid": "x", "typ": events.TokenType, "jku": "https://evil.example/jwks"}), false},
		{"embedded jwk", f.signWith(foreign, goodClaims(), map[string]any{"typ": events.TokenType, "jwk": map[string]any{"kty": "OKP"}}), false},
		{"no kid", f.signWith(f.priv, goodClaims(), map[string]any{"typ": events.TokenType}), false},
		{"typ JWT", f.signWith(f.priv, goodClaims(), map[string]any{"kid": testKID, "typ": "JWT"}), false},
		{"no typ", f.signWith(f.priv, goodClaims(), map[string]any{"kid": testKID}), false},
		{"expired", f.token(edit(func(c claims) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), false},
		{"no exp", f.token(edit(func(c claims) { delete(c, "exp") })), false},
		{"future iat", f.token(edit(func(c claims) { c["iat"] = now.Add(5 * time.Minute).Unix() })), false},
		{"future nbf", f.token(edit(func(c claims) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), false},
		{"wrong aud", f.token(edit(func(c claims) { c["aud"] = "someone-else" })), false},
		{"no aud", f.token(edit(func(c claims) { delete(c, "aud") })), false},
		{"wrong iss", f.token(edit(func(c claims) { c["iss"] = "evil" })), false},
		{"no iss", f.token(edit(func(c claims) { delete(c, "iss") })), false},
		{"no sub", f.token(edit(func(c claims) { delete(c, "sub") })), false},
		{"no sid", f.token(edit(func(c claims) { delete(c, "sid") })), false},
		{"no jti", f.token(edit(func(c claims) { delete(c, "jti") })), false},
		{"payload edited", tamperedPayload, false},
		{"two parts", parts[0] + "." + parts[1], false},
		{"four parts", good + ".x", false},
		{"padded", good + "==", false},
		{"dots", strings.Repeat(".", 4000), false},
		{"8 KiB", strings.Repeat("a", 8<<10), false},
		{"garbage", "not-a-token", false},
	}
	var unauthorizedBody string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An id that cannot exist answers 404 after authentication without any service.
			scheme := "Bearer "
			if strings.Contains(tt.name, "lowercase") {
				scheme = "bearer "
			}
			for _, h := range []map[string]string{
				{"Authorization": scheme + tt.token},
				{"Cookie": cookieAccess + "=" + tt.token},
			} {
				got := f.do(req{method: "GET", path: "/api/chats/no.such.id", headers: h})
				if tt.ok {
					if got.status != http.StatusNotFound {
						t.Fatalf("%v: status = %d, want 404 (body %s)", h, got.status, got.body)
					}
					continue
				}
				if got.status != http.StatusUnauthorized || got.code() != events.CodeUnauthenticated {
					t.Fatalf("status = %d %s, want 401 unauthenticated", got.status, got.code())
				}
				if unauthorizedBody == "" {
					unauthorizedBody = got.body
				}
				if diff := cmp.Diff(unauthorizedBody, got.body); diff != "" {
					t.Errorf("401 body differs (-first +this):\n%s", diff)
				}
			}
		})
	}
	t.Run("no credentials", func(t *testing.T) {
		got := f.do(req{method: "GET", path: "/api/chats/no.such.id"})
		if got.status != http.StatusUnauthorized || got.body != unauthorizedBody {
			t.Fatalf("got %d %s, want the one 401 body", got.status, got.body)
		}
	})
	t.Run("bad scheme", func(t *testing.T) {
		got := f.do(req{method: "GET", path: "/api/chats/no.such.id", headers: map[string]string{"Authorization": "Basic " + good}})
		if got.status != http.StatusUnauthorized || got.body != unauthorizedBody {
			t.Fatalf("got %d %s, want the one 401 body", got.status, got.body)
		}
	})
}
