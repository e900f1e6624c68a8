// Command gateway runs Parley's HTTP edge.
package main

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/gateway"
)

func main() {
	// -healthcheck probes /healthz on GATEWAY_ADDR.
	ops.Main("gateway", func(c gateway.Config) string { return c.Addr },
		func(ctx context.Context, cfg gateway.Config, log *slog.Logger) error {
			return gateway.Run(ctx, cfg, gateway.Deps{Logger: log})
		})
}
