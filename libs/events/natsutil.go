package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// HeaderRequestID carries the request id across HTTP and NATS.
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

// WithRequestID returns a context carrying a request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Connect opens a NATS connection that never gives up: it retries the first connect and
// reconnects forever, so a NATS restart never needs a service restart. Each service gets
// its own inbox prefix so that NATS permissions can keep replies private. For TLS pass
// NATSTLS.Options() (or use a tls:// URL to verify against the system roots).
func Connect(url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(8 << 20),
		nats.CustomInboxPrefix("_INBOX_" + name),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil && nc.IsClosed() {
				return // our own Close or Drain at shutdown
			}
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		// Never the URL as given: it may carry the service's NATS password.
		return nil, fmt.Errorf("connect to nats at %s: %w", RedactURL(url), err)
	}
	return nc, nil
}

// Request sends req to subject and decodes the reply into rep. The context's deadline
// bounds the call. Errors are always *Error: a service's own error as it sent it, no
// responders as unavailable, a timeout as timeout, an unreadable reply as bad gateway.
func Request[Req, Rep any](ctx context.Context, nc *nats.Conn, subject string, req Req) (Rep, error) {
	var rep Rep
	body, err := json.Marshal(req)
	if err != nil {
		return rep, fmt.Errorf("encode request for %s: %w", subject, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	if id := RequestID(ctx); id != "" {
		msg.Header.Set(HeaderRequestID, id)
	}
	if tok := UserToken(ctx); tok != "" {
		msg.Header.Set(HeaderUserToken, tok)
	}
	res, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrConnectionClosed),
			errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting),
			!nc.IsConnected():
			return rep, ErrUnavailable
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			return rep, ErrTimeout
		case errors.Is(err, context.Canceled):
			return rep, err
		}
		return rep, ErrUnavailable
	}
	if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
		var env ErrorEnvelope
		if jerr := json.Unmarshal(res.Data, &env); jerr != nil || env.Error == nil || env.Error.Code == "" {
			return rep, ErrBadGateway
		}
		return rep, env.Error
	}
	if err := json.Unmarshal(res.Data, &rep); err != nil {
		return rep, ErrBadGateway
	}
	return rep, nil
}

// HandlerFunc is a typed request handler for a micro endpoint.
type HandlerFunc[Req, Rep any] func(ctx context.Context, req Req) (Rep, error)

// Handle adapts a typed handler to a micro handler: it decodes the request, bounds the
// work with timeout (micro does not carry the caller's deadline), and replies with the
// JSON result or the error. Errors that are not *Error are logged here and sent as a
// generic internal error.
func Handle[Req, Rep any](log *slog.Logger, timeout time.Duration, fn HandlerFunc[Req, Rep]) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		reqID := r.Headers().Get(HeaderRequestID)
		if reqID != "" {
			ctx = WithRequestID(ctx, reqID)
		}
		if tok := r.Headers().Get(HeaderUserToken); tok != "" {
			ctx = WithUserToken(ctx, tok)
		}
		var req Req
		if err := json.Unmarshal(r.Data(), &req); err != nil {
			respondError(r, &Error{Code: CodeInvalidJSON, Message: "The request could not be read."})
			return
		}
		rep, err := fn(ctx, req)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				log.Error("request failed", "subject", r.Subject(), "request_id", reqID, "err", err)
			}
			respondError(r, AsError(err))
			return
		}
		if err := r.RespondJSON(rep); err != nil {
			log.Warn("reply failed", "subject", r.Subject(), "request_id", reqID, "err", err)
		}
	})
}

func respondError(r micro.Request, e *Error) {
	body, _ := json.Marshal(ErrorEnvelope{Error: e})
	_ = r.Error(strconv.Itoa(e.Status()), e.Code, body)
}

// Stream configurations, one definition each; the owner creates its stream at start.

// ChatEventsStream is the chat service's event stream. A Limits stream (not a work
// queue) so that every reader can have its own durable consumer.
//
// replicas is NATS_STREAM_REPLICAS: how many servers of a NATS cluster keep a copy (1 on
// a single server, 3 on a 3-node cluster; 0 means 1). Every service that creates a
// stream must be given the same value.
func ChatEventsStream(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Replicas:   max(replicas, 1),
		Name:       StreamChatEvents,
		Subjects:   []string{SubjectChatEvents},
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     7 * 24 * time.Hour,
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	}
}

// GenerationsStream keeps each answer's generation events for an hour, so a client can
// resume a stream on any gateway replica.
// replicas as for ChatEventsStream.
func GenerationsStream(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Replicas:  max(replicas, 1),
		Name:      StreamGenerations,
		Subjects:  []string{SubjectGenerationsAll},
		Retention: jetstream.LimitsPolicy,
		MaxAge:    time.Hour,
		Storage:   jetstream.FileStorage,
	}
}

// RevokedSessionsBucket holds revoked session ids for as long as their access tokens
// can live; replicas as for ChatEventsStream.
func RevokedSessionsBucket(ttl time.Duration, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Replicas: max(replicas, 1),
		Bucket:   BucketRevokedSessions,
		TTL:      ttl,
		Storage:  jetstream.FileStorage,
	}
}
