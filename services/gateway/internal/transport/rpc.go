package transport

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
)

// call makes one NATS request with its own deadline; the request id in ctx travels
// along. A nil connection (a router built only to be walked) is unavailable, and so is
// a connection that is down: the request would only wait in the reconnect buffer until
// its deadline, so the client gets a prompt 503 with Retry-After instead.
func call[Req, Rep any](ctx context.Context, nc *nats.Conn, timeout time.Duration, subject string, req Req) (Rep, error) {
	if nc == nil || !nc.IsConnected() {
		var zero Rep
		return zero, events.ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return events.Request[Req, Rep](ctx, nc, subject, req)
}
