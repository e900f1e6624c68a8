// Command chat runs the chat service.
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
	"github.com/parley-chat/parley/services/chat"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false,
		"probe the running service's /healthz on OPS_ADDR and exit 0 (healthy) or 1, for container healthchecks")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// JSON lines on stderr; calls with a request context also carry its request_id.
	log := slog.New(events.NewContextHandler(slog.NewJSONHandler(os.Stderr, nil)))
	var cfg chat.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if *healthcheck {
		os.Exit(ops.HealthcheckMain(cfg.OpsAddr, os.Stdout))
	}
	if err := chat.Run(ctx, cfg, chat.Deps{Logger: log}); err != nil {
		log.Error("chat service failed", "err", err)
		os.Exit(1)
	}
}
