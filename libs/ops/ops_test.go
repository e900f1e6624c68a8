package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
