// Package sse writes server-sent events: framing, flushing and per-write deadlines.
package sse

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Writer frames server-sent events on one response. It is not safe for concurrent use.
type Writer struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	// deadline is the write deadline set last; buf is reused for every frame.
	deadline time.Time
	buf      []byte
}

// Start sends the event-stream headers and flushes them, so that the client sees the
// stream open before the first event. The server's global read and write deadlines do
// not fit a long-lived stream: the read deadline is lifted (its expiry would cancel the
// request context) and every write gets its own deadline instead (writeTimeout, renewed
// once half of it has passed: see extend).
func Start(w http.ResponseWriter, writeTimeout time.Duration) (*Writer, error) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("clear read deadline: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
	sw := &Writer{w: w, rc: rc, writeTimeout: writeTimeout}
	if err := sw.extend(); err != nil {
		return nil, err
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, fmt.Errorf("flush stream headers: %w", err)
	}
	return sw, nil
}

// extend moves the write deadline to writeTimeout from now, unless more than half of
// that is still left (setting a deadline costs more than reading the clock): each
// write has at least writeTimeout/2.
func (s *Writer) extend() error {
	if s.writeTimeout <= 0 {
		return nil
	}
	now := time.Now()
	if s.deadline.Sub(now) > s.writeTimeout/2 {
		return nil
	}
	s.deadline = now.Add(s.writeTimeout)
	if err := s.rc.SetWriteDeadline(s.deadline); err != nil {
		// Recorders in tests do not support deadlines; real connections do.
		if errors.Is(err, http.ErrNotSupported) {
			return nil
		}
		return fmt.Errorf("set write deadline: %w", err)
	}
	return nil
}

// Event writes one event with an id, an event name and data encoded as JSON on one line,
// then flushes it.
func (s *Writer) Event(id int64, event string, data any) error {
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", event, err)
	}
	return s.Raw(id, event, body)
}

// Raw writes one event whose data is already a single line of JSON, given as parts
// written one after the other, then flushes it.
func (s *Writer) Raw(id int64, event string, data ...[]byte) error {
	s.buf = appendFrame(s.buf[:0], id, event, data...)
	return s.write(s.buf)
}

// Comment writes a comment line (a keepalive) and flushes it.
func (s *Writer) Comment(text string) error {
	s.buf = append(append(append(s.buf[:0], ": "...), text...), "\n\n"...)
	return s.write(s.buf)
}

func (s *Writer) write(b []byte) error {
	if err := s.extend(); err != nil {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// Frame returns the wire form of one event. data must be a single line (encoding/json
// output always is: it escapes newlines inside strings).
func Frame(id int64, event string, data []byte) []byte {
	return appendFrame(make([]byte, 0, len(data)+len(event)+32), id, event, data)
}

func appendFrame(b []byte, id int64, event string, data ...[]byte) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, "\nevent: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	for _, d := range data {
		b = append(b, d...)
	}
	b = append(b, "\n\n"...)
	return b
}
