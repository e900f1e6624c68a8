// Command auth runs the Parley auth service.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/parley-chat/parley/services/auth"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cfg auth.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if err := auth.Run(ctx, cfg, auth.Deps{Logger: log}); err != nil {
		log.Error("auth service failed", "err", err)
		os.Exit(1)
	}
}
