package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// genPublisher publishes one answer's generation events in order. The first lookup of
// the subject's last event fixes the sequence; within the attempt the publisher counts
// on its own and publishes deltas asynchronously (one connection keeps them in order).
// Deltas arriving closer together than the coalesce window are merged. Terminal and
// hand-back events go through publishCAS (compare-and-set on the subject) once every
// earlier publish is acknowledged. Every event carries the answer's jobState header.
// It implements app.Sink.
type genPublisher struct {
	js        jetstream.JetStream
	stream    jetstream.Stream
	messageID string
	subject   string
	coalesce  time.Duration
	log       *slog.Logger

	mu        sync.Mutex
	seq       int64
	buf       strings.Builder
	lastFlush time.Time
	timer     *time.Timer
	pending   []jetstream.PubAckFuture
	state     jobState
}

func newPublisher(js jetstream.JetStream, stream jetstream.Stream, messageID string, coalesce time.Duration,
	log *slog.Logger, last lastEvent) *genPublisher {
	p := &genPublisher{js: js, stream: stream, messageID: messageID, subject: events.SubjectGeneration(messageID),
		coalesce: coalesce, log: log, seq: last.ev.Seq}
	if last.state != nil {
		p.state = *last.state
		p.state.Parked = false
	}
	return p
}

// begin starts an attempt: it reads the subject's newest event (which fixes the
// sequence) and, when an earlier attempt (perhaps by another worker) streamed text,
// publishes `reset` so clients drop that text. Events published by someone else (no
// state header) count as text, to be safe. It returns errAlreadyTerminal when the
// answer was finished meanwhile.
func (p *genPublisher) begin(ctx context.Context) error {
	last, err := readLast(ctx, p.stream, p.messageID)
	if err != nil {
		return err
	}
	if last.terminal() {
		return errAlreadyTerminal
	}
	p.mu.Lock()
	p.seq = last.ev.Seq
	if last.state != nil {
		p.state = *last.state
		p.state.Parked = false
	}
	st := p.state
	p.mu.Unlock()
	if !last.ok || (last.state != nil && !last.state.Dirty) {
		return nil
	}
	st.Dirty = false
	ev, err := publishCAS(ctx, p.js, p.stream, p.messageID, events.GenerationEvent{Type: events.GenReset}, st)
	if err != nil {
		return fmt.Errorf("publish reset: %w", err)
	}
	p.mu.Lock()
	p.seq = ev.Seq
	p.state.Dirty = false
	p.mu.Unlock()
	return nil
}

// Attempt implements app.Sink.
func (p *genPublisher) Attempt(_ context.Context, n int, retrySince time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state.Attempts = n
	p.state.RetrySince = retrySince
}

// handBack publishes the waiting event of an answer handed back to JetStream (counted
// as a free delivery, marked parked) after everything before it is stored.
func (p *genPublisher) handBack(ctx context.Context, reason string, retryAt time.Time) error {
	p.drain(ctx)
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	st.Free++
	st.Parked = true
	at := retryAt.UTC()
	_, err := publishCAS(ctx, p.js, p.stream, p.messageID, events.GenerationEvent{Type: events.GenWaiting, Reason: reason, RetryAt: &at}, st)
	return err
}

// Delta implements app.Sink.
func (p *genPublisher) Delta(_ context.Context, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.WriteString(text)
	since := time.Since(p.lastFlush)
	if p.coalesce <= 0 || since >= p.coalesce {
		p.flushLocked()
		return
	}
	if p.timer == nil {
		p.timer = time.AfterFunc(p.coalesce-since, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.timer = nil
			p.flushLocked()
		})
	}
}

// Reset implements app.Sink.
func (p *genPublisher) Reset(_ context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopTimerLocked()
	p.buf.Reset()
	p.state.Dirty = false
	p.publishLocked(events.GenerationEvent{Type: events.GenReset})
}

// Waiting implements app.Sink.
func (p *genPublisher) Waiting(_ context.Context, reason string, retryAt time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopTimerLocked()
	p.flushLocked()
	at := retryAt.UTC()
	p.publishLocked(events.GenerationEvent{Type: events.GenWaiting, Reason: reason, RetryAt: &at})
}

func (p *genPublisher) stopTimerLocked() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

func (p *genPublisher) flushLocked() {
	if p.buf.Len() == 0 {
		return
	}
	p.state.Dirty = true
	p.publishLocked(events.GenerationEvent{Type: events.GenDelta, Text: p.buf.String()})
	p.buf.Reset()
	p.lastFlush = time.Now()
}

func (p *genPublisher) publishLocked(ev events.GenerationEvent) {
	p.seq++
	ev.Seq = p.seq
	body, err := json.Marshal(ev)
	if err != nil {
		p.log.Error("encode generation event", "err", err)
		return
	}
	msg := &nats.Msg{Subject: p.subject, Data: body, Header: p.state.header()}
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(events.StreamGenerations))
	if err != nil {
		p.log.Warn("publish generation event", "type", ev.Type, "seq", ev.Seq, "err", err)
		return
	}
	p.pending = append(p.pending, f)
}

// drain flushes buffered text and waits until every publish so far is acknowledged.
func (p *genPublisher) drain(ctx context.Context) {
	p.mu.Lock()
	p.stopTimerLocked()
	p.flushLocked()
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	failed := 0
	for _, f := range pending {
		select {
		case <-f.Ok():
		case <-f.Err():
			failed++
		case <-ctx.Done():
			p.log.Warn("generation events not acknowledged in time")
			return
		}
	}
	if failed > 0 {
		p.log.Warn("some generation events were not stored", "failed", failed)
	}
}

// finish publishes the terminal event after everything before it is stored, unless
// the subject already ends with one (chat or a cancel handler finished it first).
func (p *genPublisher) finish(ctx context.Context, ev events.GenerationEvent) error {
	p.drain(ctx)
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if _, err := publishCAS(ctx, p.js, p.stream, p.messageID, ev, st); err != nil && !errors.Is(err, errAlreadyTerminal) {
		return err
	}
	return nil
}
