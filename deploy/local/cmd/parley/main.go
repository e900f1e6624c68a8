// Command parley runs the whole product in one process (`make run`).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-chat/parley/deploy/local"
	"github.com/parley-chat/parley/libs/events"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Lines logged with a request's context carry its request_id (events.ContextHandler).
	log := slog.New(events.NewContextHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cfg, svc, err := local.LoadConfigs()
	if err == nil {
		err = local.Run(ctx, cfg, svc, log)
	}
	if err != nil {
		log.Error("parley stopped with an error", "err", err)
		os.Exit(1)
	}
}
