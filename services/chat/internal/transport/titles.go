package transport

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
)

// Titles asks the inference workers for chat titles (inference.v1.title.generate);
// it implements app.Titler.
type Titles struct {
	nc *nats.Conn
}

// NewTitles returns a title client on nc.
func NewTitles(nc *nats.Conn) *Titles { return &Titles{nc: nc} }

// GenerateTitle implements app.Titler; ctx bounds the request.
func (t *Titles) GenerateTitle(ctx context.Context, req events.TitleRequest) (string, error) {
	rep, err := events.Request[events.TitleRequest, events.TitleReply](ctx, t.nc, events.SubjectTitleGenerate, req)
	if err != nil {
		return "", err
	}
	return rep.Title, nil
}
