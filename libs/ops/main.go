package ops

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/parley-chat/parley/libs/events"
)

// Main is the whole of a service's command. It reads the configuration C from the
// environment (envconfig tags); with -healthcheck it probes the running service's
// /healthz on the address healthAddr names and exits 0 (healthy) or 1, for container
// healthchecks; otherwise it runs run until SIGINT or SIGTERM, with JSON log lines on
// stderr (those written with a request's context carry its request_id), and exits 1
// when run fails.
func Main[C any](name string, healthAddr func(C) string, run func(ctx context.Context, cfg C, log *slog.Logger) error) {
	healthcheck := flag.Bool("healthcheck", false,
		"probe the running service's /healthz and exit 0 (healthy) or 1, for container healthchecks")
	flag.Parse()
	log := slog.New(events.NewContextHandler(slog.NewJSONHandler(os.Stderr, nil)))
	var cfg C
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if *healthcheck {
		os.Exit(HealthcheckMain(healthAddr(cfg), os.Stdout))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error(name+" stopped with an error", "err", err)
		os.Exit(1)
	}
}
