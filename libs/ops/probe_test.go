package ops

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startOps runs a real operations server (Serve) on a free loopback port and returns
// its listen address.
func startOps(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, h, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	// Serve listens in its goroutine: wait until it accepts connections.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("operations server did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbe(t *testing.T) {
	addr := startOps(t, Handler(NewRegistry(), nil))
	_, port, _ := net.SplitHostPort(addr)
	unhealthy := startOps(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	tests := []struct {
		name    string
		addr    string
		wantErr string
	}{
		{"loopback address", addr, ""},
		{"port only, as in OPS_ADDR=:9090", ":" + port, ""},
		{"wildcard host", "0.0.0.0:" + port, ""},
		{"closed port", closedPort(t), "connection refused"},
		{"not 200", unhealthy, "status 503"},
		{"listener off", "", "operations listener is off"},
		{"not an address", "9090", "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := Probe(ctx, tt.addr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Probe(%q) = %v, want nil", tt.addr, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Probe(%q) = %v, want an error containing %q", tt.addr, err, tt.wantErr)
			}
		})
	}
}

func TestHealthcheckMain(t *testing.T) {
	addr := startOps(t, Handler(NewRegistry(), nil))
	var out bytes.Buffer
	if code := HealthcheckMain(addr, &out); code != 0 {
		t.Fatalf("healthy server: exit %d (%s)", code, out.String())
	}
	out.Reset()
	if code := HealthcheckMain(closedPort(t), &out); code != 1 || !strings.Contains(out.String(), "unhealthy") {
		t.Fatalf("closed port: exit %d (%s), want 1 and 'unhealthy'", code, out.String())
	}
}
