// Command inference runs an inference worker (configuration from the environment).
package main

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/inference"
)

func main() {
	// -healthcheck probes /healthz on INFERENCE_METRICS_ADDR.
	ops.Main("inference worker", func(c inference.Config) string { return c.MetricsAddr },
		func(ctx context.Context, cfg inference.Config, log *slog.Logger) error {
			return inference.Run(ctx, cfg, inference.Deps{Logger: log})
		})
}
