package gateway

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
)

// TestShutdownEndsOpenStreams: cancelling Run's context while a client holds an open
// answer stream ends that stream (the client sees the connection close), Run returns
// nil well within its bound, and nothing is served afterwards. The only other
// participants are a key source (auth.v1.keys.get) and a message source
// (chat.v1.message.get) standing in for auth and chat on a real NATS server.
func TestShutdownEndsOpenStreams(t *testing.T) {
	ns := testnats.New(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const kid, userID, messageID = "shutdown-test-key", "u-shutdown", "m-shutdown"
	if _, err := nc.Subscribe(events.SubjectAuthKeys, func(m *nats.Msg) {
		body, _ := json.Marshal(events.KeysReply{Keys: []events.PublicKey{{KID: kid, Alg: events.TokenAlg, Key: pub}}})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	// The answer is still being written, so the stream stays open.
	gotRequestIDs := make(chan string, 100)
	if _, err := nc.Subscribe(events.SubjectMessageGet, func(m *nats.Msg) {
		gotRequestIDs <- m.Header.Get(events.HeaderRequestID)
		body, _ := json.Marshal(events.MessageReply{Message: events.Message{
			ID: messageID, ChatID: "c-shutdown", Role: events.RoleAssistant, Status: events.StatusStreaming, CreatedAt: time.Now(),
		}})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	log := events.WithRequestIDLogging(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{NATSURL: ns.ClientURL(), WebDir: t.TempDir(), KeepAlive: time.Hour}, Deps{Listener: ln, Logger: log})
	}()

	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": userID, "sid": "s-shutdown",
		"jti": "jti-shutdown", "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
	})
	tok.Header["kid"] = kid
	tok.Header["typ"] = events.TokenType
	token, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}

	// Open the stream once the gateway has its keys and revocation list.
	const requestID = "req-stream-shutdown-1"
	var res *http.Response
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/messages/"+messageID+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(events.HeaderRequestID, requestID)
		req.Header.Set("Accept", "text/event-stream")
		res, err = http.DefaultClient.Do(req)
		if err == nil && res.StatusCode == http.StatusOK {
			break
		}
		if err == nil {
			res.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream did not open: %v %v", err, res)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	// The request id travels to chat with the NATS request (the gateway itself logs
	// a request only when it fails; those lines carry request_id explicitly).
	if id := <-gotRequestIDs; id != requestID {
		t.Errorf("chat.v1.message.get carried request id %q, want %q", id, requestID)
	}
	if id := res.Header.Get(events.HeaderRequestID); id != requestID {
		t.Errorf("response %s = %q, want %q", events.HeaderRequestID, id, requestID)
	}

	// An event published now reaches the client: the stream is live.
	js, _ := jetstream.New(nc)
	ev, _ := json.Marshal(events.GenerationEvent{Type: events.GenDelta, Seq: 1, Text: "partial"})
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, err := js.Publish(pctx, events.SubjectGeneration(messageID), ev); err != nil {
		t.Fatalf("publish delta: %v", err)
	}
	pcancel()
	lines := make(chan string, 100)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
		close(lines)
	}()
	sawDelta := false
	for !sawDelta {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream closed before the delta: %v", <-readErr)
			}
			sawDelta = strings.Contains(l, `"text":"partial"`)
		case <-time.After(10 * time.Second):
			t.Fatal("the delta did not reach the client")
		}
	}

	// SIGTERM: the stream ends and Run returns nil within the bound.
	stopped := time.Now()
	cancel()
	const bound = 10 * time.Second
	ended := false
	for !ended {
		select {
		case _, ok := <-lines:
			ended = !ok
		case <-time.After(bound):
			t.Fatal("the open stream was not ended by the shutdown")
		}
	}
	if err := <-readErr; err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		// A clean end of the chunked body is what a browser's EventSource sees as a
		// closed connection (it then reconnects to another replica).
		t.Logf("stream ended with %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(bound - time.Since(stopped)):
		t.Fatalf("Run did not return within %v of the cancel", bound)
	}
	// No new work: the listener is closed.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after Run returned")
	}
}
