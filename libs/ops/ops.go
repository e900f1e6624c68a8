// Package ops is what every service exposes to operators besides its real work: a small
// HTTP listener with /metrics (Prometheus, from the service's own registry), /healthz
// (the process is alive) and /readyz (its dependencies answer), plus metrics for NATS
// request-reply endpoints.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is ready.
type Check func(ctx context.Context) error

// NewRegistry returns a registry with the Go runtime and process collectors, so two
// services in one process (make run) never share the default registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves /metrics, /healthz and /readyz.
func Handler(reg *prometheus.Registry, checks map[string]Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		status := http.StatusOK
		body := ""
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body += fmt.Sprintf("%s: not ready\n", name)
			} else {
				body += fmt.Sprintf("%s: ok\n", name)
			}
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
	return mux
}

// Serve runs the operations listener on addr until ctx is done. An empty addr serves
// nothing and just waits, so the listener is optional.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for operations on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	log.Info("operations endpoint listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve operations: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop operations endpoint: %w", err)
	}
	return nil
}

// NATSConnected is ready while the connection is up.
func NATSConnected(nc *nats.Conn) Check {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats not connected")
		}
		return nil
	}
}

// Pinger is anything with a PingContext (a *sql.DB).
type Pinger interface {
	PingContext(ctx context.Context) error
}

// DBReachable is ready while the database answers a ping.
func DBReachable(db Pinger) Check {
	return func(ctx context.Context) error { return db.PingContext(ctx) }
}
