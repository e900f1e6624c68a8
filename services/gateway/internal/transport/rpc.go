package transport

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
)

// call makes one NATS request with its own deadline; the request id in ctx travels
// along, and so does the user's access token (see withPrincipal), but only to chat and
// auth: no other service needs it. A nil connection (a router built only to be walked) is unavailable, and so is
// a connection that is down: the request would only wait in the reconnect buffer until
// its deadline, so the client gets a prompt 503 with Retry-After instead.
func call[Req, Rep any](ctx context.Context, nc *nats.Conn, timeout time.Duration, subject string, req Req) (Rep, error) {
	if nc == nil || !nc.IsConnected() {
		var zero Rep
		return zero, events.ErrUnavailable
	}
	if !strings.HasPrefix(subject, "chat.") && !strings.HasPrefix(subject, "auth.") {
		ctx = events.WithUserToken(ctx, "")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return events.Request[Req, Rep](ctx, nc, subject, req)
}
