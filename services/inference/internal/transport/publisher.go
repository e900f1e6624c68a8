package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// genPublisher publishes one answer's generation events in order. The first lookup of
// the subject's last event fixes the sequence; within the attempt the publisher counts
// on its own and publishes deltas asynchronously (one connection keeps them in order).
// Deltas arriving closer together than the coalesce window are merged. Terminal events
// go through events.PublishGenerationEvent (compare-and-set on the subject) once every
// earlier publish is acknowledged. It implements app.Sink.
type genPublisher struct {
	js        jetstream.JetStream
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
}

func newPublisher(js jetstream.JetStream, messageID string, coalesce time.Duration, log *slog.Logger) *genPublisher {
	return &genPublisher{js: js, messageID: messageID, subject: events.SubjectGeneration(messageID), coalesce: coalesce, log: log}
}

// begin starts an attempt: when the subject already holds events (an earlier attempt,
// perhaps by another worker), it publishes `reset` so clients drop that text.
func (p *genPublisher) begin(ctx context.Context) error {
	_, _, ok, err := events.LastGenerationEvent(ctx, p.js, p.messageID)
	if err != nil {
		return fmt.Errorf("read generation subject: %w", err)
	}
	if !ok {
		return nil
	}
	ev, err := events.PublishGenerationEvent(ctx, p.js, p.messageID, events.GenerationEvent{Type: events.GenReset})
	if err != nil {
		return fmt.Errorf("publish reset: %w", err)
	}
	p.mu.Lock()
	p.seq = ev.Seq
	p.mu.Unlock()
	return nil
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
	f, err := p.js.PublishAsync(p.subject, body, jetstream.WithExpectStream(events.StreamGenerations))
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

// finish publishes the terminal event after everything before it is stored.
func (p *genPublisher) finish(ctx context.Context, ev events.GenerationEvent) error {
	p.drain(ctx)
	if _, err := events.PublishGenerationEvent(ctx, p.js, p.messageID, ev); err != nil {
		return fmt.Errorf("publish %s event: %w", ev.Type, err)
	}
	return nil
}
