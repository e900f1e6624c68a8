package transport

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
)

const (
	modelsTTL = 30 * time.Second
	// modelsStaleTTL is how long a catalogue may still be used when the inference
	// workers cannot be reached.
	modelsStaleTTL = 10 * time.Minute
	modelsTimeout  = 2 * time.Second
)

// Models asks the inference workers for their models (inference.v1.models.list) and
// keeps the answer for 30 s.
type Models struct {
	nc  *nats.Conn
	log *slog.Logger

	mu        sync.Mutex
	models    []events.Model
	fetchedAt time.Time
}

// NewModels returns a catalogue client on nc.
func NewModels(nc *nats.Conn, log *slog.Logger) *Models {
	return &Models{nc: nc, log: log}
}

// Models implements app.Models.
func (m *Models) Models(ctx context.Context) ([]events.Model, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.models != nil && time.Since(m.fetchedAt) < modelsTTL {
		return m.models, nil
	}
	rctx, cancel := context.WithTimeout(ctx, modelsTimeout)
	defer cancel()
	rep, err := events.Request[events.Empty, events.ModelsReply](rctx, m.nc, events.SubjectModelsList, events.Empty{})
	if err != nil {
		if m.models != nil && time.Since(m.fetchedAt) < modelsStaleTTL {
			m.log.Warn("model catalogue refresh failed; using the previous one", "err", err)
			return m.models, nil
		}
		return nil, err
	}
	m.models, m.fetchedAt = rep.Models, time.Now()
	return m.models, nil
}
