package events

import (
	"context"
	"log/slog"
)

// LogKeyRequestID is the attribute under which log lines carry the request id.
const LogKeyRequestID = "request_id"

// ContextHandler wraps a slog.Handler so that every record logged with a context
// carrying a request id (log.InfoContext(ctx, ...) and friends, with ctx from
// WithRequestID, as events.Handle and the gateway set it) gets a request_id attribute.
// Records that already have one (an explicit "request_id" attribute or a logger
// made With it) are left as they are, so the id never appears twice.
type ContextHandler struct {
	next slog.Handler
	// has is true when WithAttrs already added a request_id at the top level.
	has bool
	// grouped is true after WithGroup: attributes added later (the request id too)
	// land in that group, and a request_id inside it does not count as present.
	grouped bool
}

// NewContextHandler returns next wrapped to add request_id from the context.
func NewContextHandler(next slog.Handler) *ContextHandler {
	return &ContextHandler{next: next}
}

// WithRequestIDLogging returns a logger whose records carry request_id from their
// context (log == nil gives nil). A logger already wrapped is returned as it is.
func WithRequestIDLogging(log *slog.Logger) *slog.Logger {
	if log == nil {
		return nil
	}
	if _, ok := log.Handler().(*ContextHandler); ok {
		return log
	}
	return slog.New(NewContextHandler(log.Handler()))
}

// Enabled reports whether the wrapped handler handles records at level.
func (h *ContextHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds request_id from ctx unless the record already has one.
func (h *ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.has || ctx == nil {
		return h.next.Handle(ctx, r)
	}
	id := RequestID(ctx)
	if id == "" {
		return h.next.Handle(ctx, r)
	}
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == LogKeyRequestID {
			found = true
			return false
		}
		return true
	})
	if found {
		return h.next.Handle(ctx, r)
	}
	r.AddAttrs(slog.String(LogKeyRequestID, id))
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a handler whose records carry attrs.
func (h *ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.has
	if !h.grouped {
		for _, a := range attrs {
			if a.Key == LogKeyRequestID {
				has = true
			}
		}
	}
	return &ContextHandler{next: h.next.WithAttrs(attrs), has: has, grouped: h.grouped}
}

// WithGroup returns a handler that puts later attributes in the group name.
func (h *ContextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &ContextHandler{next: h.next.WithGroup(name), has: h.has, grouped: true}
}
