// Command inference runs an inference worker (configuration from the environment).
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
	"github.com/parley-chat/parley/services/inference"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false,
		"probe the running service's /healthz on INFERENCE_METRICS_ADDR and exit 0 (healthy) or 1, for container healthchecks")
	flag.Parse()
	// JSON lines on stderr; calls with a request context also carry its request_id.
	log := slog.New(events.NewContextHandler(slog.NewJSONHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cfg inference.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if *healthcheck {
		os.Exit(ops.HealthcheckMain(cfg.MetricsAddr, os.Stdout))
	}
	if err := inference.Run(ctx, cfg, inference.Deps{Logger: log}); err != nil {
		log.Error("inference stopped with an error", "err", err)
		os.Exit(1)
	}
}
