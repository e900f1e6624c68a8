package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway/internal/session"
)

// testKID names the key the fixture publishes.
const testKID = "test-key-1"

// fixture is a gateway edge on a real embedded NATS whose only other participant is
// a key source answering auth.v1.keys.get with a key generated here. No other service
// answers, so a request that passes every edge check ends in 503 unavailable (no
// responders), which tells it apart from the edge's own refusals.
type fixture struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	guard  *session.Guard
	srv    *Server
	http   *httptest.Server
	priv   ed25519.PrivateKey
	pub    ed25519.PublicKey
	toChat atomic.Int64 // requests that reached chat.v1.>
	toAuth atomic.Int64 // requests that reached auth.v1.> other than keys
	// chat, when set, answers chat.v1.> requests first; it reports whether it did.
	chat atomic.Pointer[func(m *nats.Msg) bool]
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	ns := testnats.New(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	f := &fixture{t: t, nc: nc, js: js, priv: priv, pub: pub}

	if _, err := nc.Subscribe(events.SubjectAuthKeys, func(m *nats.Msg) {
		body, _ := json.Marshal(events.KeysReply{Keys: []events.PublicKey{{KID: testKID, Alg: events.TokenAlg, Key: pub}}})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatalf("serve keys: %v", err)
	}
	// Count what reaches the services, and answer it as a service would that is
	// temporarily unavailable.
	unavailable := func(m *nats.Msg) {
		body, _ := json.Marshal(events.ErrorEnvelope{Error: events.ErrUnavailable})
		r := nats.NewMsg(m.Reply)
		r.Data = body
		r.Header.Set(micro.ErrorCodeHeader, "503")
		r.Header.Set(micro.ErrorHeader, events.CodeUnavailable)
		_ = m.RespondMsg(r)
	}
	if _, err := nc.Subscribe("chat.v1.>", func(m *nats.Msg) {
		f.toChat.Add(1)
		if h := f.chat.Load(); h != nil && (*h)(m) {
			return
		}
		unavailable(m)
	}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := nc.Subscribe("auth.v1.>", func(m *nats.Msg) {
		if m.Subject != events.SubjectAuthKeys {
			f.toAuth.Add(1)
			unavailable(m)
		}
	}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	f.guard = session.New(nc, js, log, session.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.guard.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for f.guard.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("guard not ready: %v", f.guard.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if opts.WebDir == "" {
		opts.WebDir = t.TempDir()
	}
	// Requests that would have to wait for a service fail fast here.
	opts.AuthTimeout, opts.ChatTimeout, opts.PasswordTimeout = time.Second, time.Second, time.Second
	shutdown, stop := context.WithCancel(context.Background())
	srv, err := New(Deps{Logger: log, NC: nc, JS: js, Guard: f.guard, Shutdown: shutdown}, opts)
	if err != nil {
		stop()
		t.Fatalf("new server: %v", err)
	}
	f.srv = srv
	t.Cleanup(func() {
		stop()
		select {
		case <-srv.chats.stopped:
		case <-time.After(10 * time.Second):
			t.Errorf("chat event hub did not stop")
		}
	})
	f.http = httptest.NewServer(srv.Handler())
	t.Cleanup(f.http.Close)
	return f
}

// claims are the claims of a test token; zero fields are filled by token().
type claims = jwt.MapClaims

// goodClaims are the claims of a valid token for user u1, session s1.
func goodClaims() claims {
	now := time.Now()
	return claims{
		"iss": events.TokenIssuer,
		"aud": events.TokenAudience,
		"sub": "u1",
		"sid": "s1",
		"jti": randomHex(16),
		"iat": now.Unix(),
		"exp": now.Add(15 * time.Minute).Unix(),
	}
}

// token signs claims with the fixture's key and the right header.
func (f *fixture) token(c claims) string {
	f.t.Helper()
	return f.signWith(f.priv, c, map[string]any{"kid": testKID, "typ": events.TokenType})
}

func (f *fixture) signWith(key ed25519.PrivateKey, c claims, header map[string]any) string {
	f.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	for k := range tok.Header {
		delete(tok.Header, k)
	}
	tok.Header["alg"] = "EdDSA"
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		f.t.Fatalf("sign: %v", err)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// req describes one request.
type req struct {
	method  string
	path    string
	body    string
	headers map[string]string
}

// resp is what came back.
type resp struct {
	status int
	header http.Header
	body   string
}

func (r resp) code() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(r.body), &env)
	return env.Error.Code
}

func (f *fixture) do(q req) resp {
	f.t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r, err := http.NewRequest(q.method, f.http.URL+q.path, body)
	if err != nil {
		f.t.Fatalf("new request: %v", err)
	}
	for k, v := range q.headers {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	res, err := f.http.Client().Do(r)
	if err != nil {
		f.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

// jsonHeaders are what a well-behaved same-origin client sends with a JSON body.
func jsonHeaders(extra map[string]string) map[string]string {
	h := map[string]string{"Content-Type": "application/json", headerCSRF: "1"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}
