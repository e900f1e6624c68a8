package transport

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// AddModelsService serves inference.v1.models.list from the catalog. Every worker
// serves it (micro's queue group spreads the requests).
func AddModelsService(nc *nats.Conn, catalog *app.Catalog, log *slog.Logger) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        events.InferenceService,
		Version:     "1.0.0",
		Description: "Parley inference workers",
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service %s: %w", events.InferenceService, err)
	}
	list := func(_ context.Context, _ events.Empty) (events.ModelsReply, error) {
		return events.ModelsReply{Models: catalog.Models()}, nil
	}
	if err := svc.AddEndpoint("models-list", events.Handle(log, 5*time.Second, list),
		micro.WithEndpointSubject(events.SubjectModelsList)); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("add endpoint %s: %w", events.SubjectModelsList, err)
	}
	return svc, nil
}
