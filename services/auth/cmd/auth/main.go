// Command auth runs the Parley auth service.
package main

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/auth"
)

func main() {
	// -healthcheck probes /healthz on OPS_ADDR.
	ops.Main("auth service", func(c auth.Config) string { return c.OpsAddr },
		func(ctx context.Context, cfg auth.Config, log *slog.Logger) error {
			return auth.Run(ctx, cfg, auth.Deps{Logger: log})
		})
}
