package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat/internal/app"
)

// Titles asks the inference workers for chat titles (inference.v1.title.generate);
// it implements app.Titler.
type Titles struct {
	nc *nats.Conn
}

// NewTitles returns a title client on nc.
func NewTitles(nc *nats.Conn) *Titles { return &Titles{nc: nc} }

// GenerateTitle implements app.Titler; ctx bounds the request. Failures worth another
// try later (no worker, a timeout, a busy or unreachable provider) wrap
// app.ErrUnavailable.
func (t *Titles) GenerateTitle(ctx context.Context, req events.TitleRequest) (string, error) {
	rep, err := events.Request[events.TitleRequest, events.TitleReply](ctx, t.nc, events.SubjectTitleGenerate, req)
	if err != nil {
		var e *events.Error
		if errors.As(err, &e) {
			switch e.Code {
			case events.CodeUnavailable, events.CodeTimeout, events.CodeBadGateway, events.CodeInternal,
				events.CodeProviderUnavailable, events.CodeProviderRateLimited, events.CodeProviderInterrupted:
				return "", fmt.Errorf("%w: %w", app.ErrUnavailable, err)
			}
		}
		return "", err
	}
	return rep.Title, nil
}
