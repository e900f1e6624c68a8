// Command chat runs the chat service.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/parley-chat/parley/services/chat"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var cfg chat.Config
	if err := envconfig.Process("", &cfg); err != nil {
		log.Error("read configuration", "err", err)
		os.Exit(1)
	}
	if err := chat.Run(ctx, cfg, chat.Deps{Logger: log}); err != nil {
		log.Error("chat service failed", "err", err)
		os.Exit(1)
	}
}
