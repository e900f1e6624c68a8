// Command gateway runs Parley's HTTP edge.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/gateway"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false,
		"probe the running service's /healthz on GATEWAY_ADDR and exit 0 (healthy) or 1, for container healthchecks")
	flag.Parse()
	// JSON lines on stderr; calls with a request context also carry its request_id.
	log := slog.New(events.NewContextHandler(slog.NewJSONHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cfg gateway.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if *healthcheck {
		os.Exit(ops.HealthcheckMain(cfg.Addr, os.Stdout))
	}
	if err := gateway.Run(ctx, cfg, gateway.Deps{Logger: log}); err != nil {
		log.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}
