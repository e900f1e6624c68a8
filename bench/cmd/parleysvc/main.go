// Command parleysvc runs one of Parley's services exactly as its own command does (the
// same Config read from the environment, the same Run) and also serves net/http/pprof
// on PARLEY_PPROF_ADDR, so that `parleybench -profile` can take CPU and heap profiles
// of each service under load:
//
//	PARLEY_PPROF_ADDR=127.0.0.1:6061 parleysvc gateway
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: parleysvc auth|chat|inference|gateway")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr := os.Getenv("PARLEY_PPROF_ADDR"); addr != "" {
		if err := servePprof(ctx, addr); err != nil {
			log.Error("serve pprof", "err", err)
			os.Exit(1)
		}
	}
	if err := run(ctx, os.Args[1], log); err != nil {
		log.Error(os.Args[1]+" stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name string, log *slog.Logger) error {
	switch name {
	case "auth":
		var cfg auth.Config
		if err := envconfig.Process("", &cfg); err != nil {
			return fmt.Errorf("read configuration: %w", err)
		}
		return auth.Run(ctx, cfg, auth.Deps{Logger: log})
	case "chat":
		var cfg chat.Config
		if err := envconfig.Process("", &cfg); err != nil {
			return fmt.Errorf("read configuration: %w", err)
		}
		return chat.Run(ctx, cfg, chat.Deps{Logger: log})
	case "inference":
		var cfg inference.Config
		if err := envconfig.Process("", &cfg); err != nil {
			return fmt.Errorf("read configuration: %w", err)
		}
		return inference.Run(ctx, cfg, inference.Deps{Logger: log})
	case "gateway":
		var cfg gateway.Config
		if err := envconfig.Process("", &cfg); err != nil {
			return fmt.Errorf("read configuration: %w", err)
		}
		return gateway.Run(ctx, cfg, gateway.Deps{Logger: log})
	}
	return fmt.Errorf("unknown service %q", name)
}

// servePprof serves the pprof handlers on addr until ctx ends.
func servePprof(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Default().Error("pprof server", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return nil
}
