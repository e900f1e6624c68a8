package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
)

func TestRun(t *testing.T) {
	ns := testnats.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{NATSURL: ns.ClientURL(), WebDir: t.TempDir()}, Deps{Listener: ln}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})

	get := func(path string, header http.Header) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for k, v := range header {
			r.Header[k] = v
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	if res, _ := get("/healthz", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", res.StatusCode)
	}
	// No auth, chat or inference service runs here (so no chat event stream to read
	// either): not ready, saying why.
	res, body := get("/readyz", nil)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"auth":"not answering"`) ||
		!strings.Contains(body, `"chat_events":"not reading"`) {
		t.Errorf("readyz = %d %s", res.StatusCode, body)
	}
	// Until auth publishes its keys, protected endpoints say unavailable, not 401.
	res, body = get("/api/auth/me", http.Header{"Authorization": {"Bearer x.y.z"}})
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("me before keys = %d %s", res.StatusCode, body)
	}
	// Oversized headers are refused by the server itself.
	res, _ = get("/api/auth/me", http.Header{"Cookie": {"parley_at=" + strings.Repeat("a", 24<<10)}})
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("24 KiB cookie = %d, want 431", res.StatusCode)
	}
	res, body = get("/metrics", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `gateway_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
		t.Errorf("metrics = %d, missing the healthz count:\n%.2000s", res.StatusCode, body)
	}

	// The gateway creates what it needs when it starts first.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, serr := js.Stream(ctx, events.StreamGenerations)
		_, kerr := js.KeyValue(ctx, events.BucketRevokedSessions)
		if serr == nil && kerr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream: %v, bucket: %v", serr, kerr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
		done <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after stop")
	}
}

func TestRunBadConfig(t *testing.T) {
	err := Run(context.Background(), Config{TrustedProxies: []string{"not-a-cidr"}}, Deps{})
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_TRUSTED_PROXIES") {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("unexpected cancel")
	}
}

func TestRoutes(t *testing.T) {
	routes, err := Routes()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		if strings.HasPrefix(r.Pattern, "/api/") {
			got = append(got, r.Method+" "+r.Pattern)
		}
	}
	slices.Sort(got)
	want := []string{
		"DELETE /api/chats/{chatID}",
		"GET /api/auth/me",
		"GET /api/chats",
		"GET /api/chats/latest",
		"GET /api/chats/{chatID}",
		"GET /api/chats/{chatID}/events",
		"GET /api/chats/{chatID}/export",
		"GET /api/chats/{chatID}/messages",
		"GET /api/messages/{messageID}/stream",
		"GET /api/models",
		"PATCH /api/chats/{chatID}",
		"POST /api/auth/login",
		"POST /api/auth/logout",
		"POST /api/auth/logout-all",
		"POST /api/auth/refresh",
		"POST /api/auth/signup",
		"POST /api/chats",
		"POST /api/chats/{chatID}/messages",
		"POST /api/chats/{chatID}/regenerate",
		"POST /api/messages/{messageID}/cancel",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}
