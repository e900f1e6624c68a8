package transport

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/parley-chat/parley/libs/events"
)

// Errors the gateway itself answers with (the services send their own).
var (
	errInvalidJSON      = &events.Error{Code: events.CodeInvalidJSON, Message: "The request body is not valid JSON."}
	errEmptyBody        = &events.Error{Code: events.CodeInvalidJSON, Message: "The request body is empty; send a JSON object."}
	errTrailingData     = &events.Error{Code: events.CodeInvalidJSON, Message: "The request body has data after the JSON object."}
	errInvalidUTF8      = &events.Error{Code: events.CodeInvalidJSON, Message: "The request body is not valid UTF-8."}
	errTooLarge         = &events.Error{Code: events.CodePayloadTooLarge, Message: "The request body is too large (at most 64 KiB)."}
	errUnsupportedMedia = &events.Error{Code: events.CodeUnsupportedMedia, Message: "Request bodies must be JSON (Content-Type: application/json)."}
	errCSRF             = &events.Error{Code: events.CodeCSRFRejected, Message: "This request was refused because it did not come from this site."}
	errRouteNotFound    = &events.Error{Code: events.CodeNotFound, Message: "There is no such endpoint."}
	errMethodNotAllowed = &events.Error{Code: events.CodeMethodNotAllowed, Message: "This endpoint does not support that method."}
	errRateLimited      = &events.Error{Code: events.CodeRateLimited, Message: "Too many requests. Please wait a moment and try again."}
	errInternal         = events.AsError(errors.New("internal"))
)

// handlerFunc is an HTTP handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc, answering its error with the error envelope.
func (s *Server) handle(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// writeError answers err as {"error": {...}} with its status. Errors that are not an
// *events.Error are logged and answered as a generic internal error; a request whose
// client has gone gets no answer at all.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return
	}
	var e *events.Error
	if !errors.As(err, &e) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", events.RequestID(r.Context()), "err", err)
		e = errInternal
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status(), events.ErrorEnvelope{Error: &events.Error{Code: e.Code, Message: e.Message}})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(events.ErrorEnvelope{Error: errInternal})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// logAttrs are the attributes every log line about a request carries.
func logAttrs(r *http.Request) []any {
	return []any{slog.String("request_id", events.RequestID(r.Context())), slog.String("path", r.URL.Path)}
}
