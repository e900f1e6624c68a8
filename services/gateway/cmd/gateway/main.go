// Command gateway runs Parley's HTTP edge.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/parley-chat/parley/services/gateway"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var cfg gateway.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if err := gateway.Run(ctx, cfg, gateway.Deps{Logger: log}); err != nil {
		log.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}
