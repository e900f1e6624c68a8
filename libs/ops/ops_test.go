package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHandler(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	failing := false
	h := Handler(reg, map[string]Check{"dep": func(context.Context) error {
		if failing {
			return errors.New("down")
		}
		return nil
	}})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "parley_test_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "dep: ok") {
		t.Fatalf("readyz %d %s", code, body)
	}
	failing = true
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "dep: not ready") {
		t.Fatalf("readyz when down: %d %s", code, body)
	}
}

func TestRPCMetricsCountsErrors(t *testing.T) {
	reg := NewRegistry()
	m := NewRPCMetrics(reg, "svc")
	h := m.Wrap("ep", micro.HandlerFunc(func(r micro.Request) { _ = r.Error("404", "not_found", nil) }))
	h.Handle(fakeRequest{})
	var nilMetrics *RPCMetrics
	if nilMetrics.Wrap("x", h) == nil {
		t.Fatal("nil metrics must return the handler")
	}
	rec := httptest.NewRecorder()
	Handler(reg, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `parley_rpc_requests_total{code="404",endpoint="ep",service="svc"} 1`) {
		t.Fatalf("error not counted:\n%s", body)
	}
	if !strings.Contains(body, `parley_rpc_duration_seconds_count{endpoint="ep",service="svc"} 1`) {
		t.Fatalf("latency not observed:\n%s", body)
	}
}

// fakeRequest is the smallest micro.Request: it answers nothing.
type fakeRequest struct{ micro.Request }

func (fakeRequest) Error(string, string, []byte, ...micro.RespondOpt) error { return nil }
