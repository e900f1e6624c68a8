// Command chat runs the chat service.
package main

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/chat"
)

func main() {
	// -healthcheck probes /healthz on OPS_ADDR.
	ops.Main("chat service", func(c chat.Config) string { return c.OpsAddr },
		func(ctx context.Context, cfg chat.Config, log *slog.Logger) error {
			return chat.Run(ctx, cfg, chat.Deps{Logger: log})
		})
}
