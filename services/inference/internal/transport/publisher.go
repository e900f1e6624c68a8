package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// genPublisher publishes one answer's generation events in order. The first lookup of
// the subject's last event fixes the sequence; within the attempt the publisher counts
// on its own. Events are queued and sent one at a time by a pump goroutine, each as a
// compare-and-set on the subject's last stream sequence (the previous event's), so the
// subject never gets a gap: an event lost on the way (NATS restarting) cannot be
// followed by a later one. An event that is not acknowledged is looked up on the
// subject and sent again until it is stored. Deltas queued while one is in flight,
// and deltas arriving closer together than the coalesce window, are merged. Terminal
// and hand-back events go through publishCAS once every earlier event is stored.
// Every event carries the answer's jobState header. It implements app.Sink.
type genPublisher struct {
	js        jetstream.JetStream
	stream    jetstream.Stream
	messageID string
	subject   string
	coalesce  time.Duration
	log       *slog.Logger

	// ctx ends the pump (drain gave up waiting).
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// seq and streamSeq are the newest event known stored on the subject: its Seq
	// and stream sequence (0 when the subject is empty).
	seq       int64
	streamSeq uint64
	buf       strings.Builder
	lastFlush time.Time
	timer     *time.Timer
	queue     []queuedEvent
	// idle is closed when the running pump stops; nil when none runs.
	idle  chan struct{}
	state jobState
	// header is state's encoded header value, "" when state changed since it was
	// encoded: it is encoded once per change, not once per event.
	header string
	// encodes counts the header encodings, finishFast the terminal events sent
	// without reading the subject (tests).
	encodes    int
	finishFast int
	// stored, when set, receives the time of every event stored (unix nanoseconds).
	stored *atomic.Int64
}

// queuedEvent is an event waiting for the pump, with the state header value it goes
// with.
type queuedEvent struct {
	ev     events.GenerationEvent
	header string
}

// publishAckWait bounds the wait for one event's acknowledgement before the publisher
// looks on the subject whether it was stored.
const publishAckWait = 2 * time.Second

func newPublisher(js jetstream.JetStream, stream jetstream.Stream, messageID string, coalesce time.Duration,
	log *slog.Logger, last lastEvent) *genPublisher {
	p := &genPublisher{js: js, stream: stream, messageID: messageID, subject: events.SubjectGeneration(messageID),
		coalesce: coalesce, log: log, seq: last.ev.Seq, streamSeq: last.streamSeq}
	p.ctx, p.cancel = context.WithCancel(context.Background())
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
	p.seq, p.streamSeq = last.ev.Seq, last.streamSeq
	if last.state != nil {
		p.state = *last.state
		p.state.Parked = false
	}
	p.header = ""
	st := p.state
	p.mu.Unlock()
	if !last.ok || (last.state != nil && !last.state.Dirty) {
		return nil
	}
	st.Dirty = false
	ev, streamSeq, err := publishCASSeq(ctx, p.js, p.stream, p.messageID, events.GenerationEvent{Type: events.GenReset}, st)
	if err != nil {
		return fmt.Errorf("publish reset: %w", err)
	}
	p.mu.Lock()
	p.seq, p.streamSeq = ev.Seq, streamSeq
	p.state.Dirty = false
	p.header = ""
	p.mu.Unlock()
	return nil
}

// Attempt implements app.Sink.
func (p *genPublisher) Attempt(_ context.Context, n int, retrySince time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Attempts != n || !p.state.RetrySince.Equal(retrySince) {
		p.state.Attempts = n
		p.state.RetrySince = retrySince
		p.header = ""
	}
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
	p.setDirtyLocked(false)
	// The new attempt's first text goes out at once, like the first attempt's.
	p.lastFlush = time.Time{}
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
	p.setDirtyLocked(true)
	p.publishLocked(events.GenerationEvent{Type: events.GenDelta, Text: p.buf.String()})
	p.buf.Reset()
	p.lastFlush = time.Now()
}

func (p *genPublisher) setDirtyLocked(dirty bool) {
	if p.state.Dirty != dirty {
		p.state.Dirty = dirty
		p.header = ""
	}
}

// headerLocked is the current state's header value, encoded when the state changed.
func (p *genPublisher) headerLocked() string {
	if p.header == "" {
		p.header = p.state.encode()
		p.encodes++
	}
	return p.header
}

// publishLocked queues ev (with the current state header) and makes sure the pump runs.
func (p *genPublisher) publishLocked(ev events.GenerationEvent) {
	if p.ctx.Err() != nil {
		return
	}
	p.queue = append(p.queue, queuedEvent{ev: ev, header: p.headerLocked()})
	if p.idle == nil {
		p.idle = make(chan struct{})
		go p.pump(p.idle)
	}
}

// pump sends the queued events one at a time until the queue is empty.
func (p *genPublisher) pump(idle chan struct{}) {
	defer close(idle)
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || p.ctx.Err() != nil {
			p.queue = nil
			p.idle = nil
			p.mu.Unlock()
			return
		}
		next := p.queue[0]
		n := 1
		if next.ev.Type == events.GenDelta {
			var text strings.Builder
			text.WriteString(next.ev.Text)
			for ; n < len(p.queue) && p.queue[n].ev.Type == events.GenDelta; n++ {
				text.WriteString(p.queue[n].ev.Text)
				next.header = p.queue[n].header
			}
			next.ev.Text = text.String()
		}
		p.queue = p.queue[n:]
		next.ev.Seq = p.seq + 1
		after := p.streamSeq
		p.mu.Unlock()

		streamSeq, err := p.send(next, after)

		p.mu.Lock()
		if err != nil {
			switch {
			case errors.Is(err, errAlreadyTerminal):
				p.log.Info("answer finished meanwhile, generation events stopped")
			case !errors.Is(err, context.Canceled):
				p.log.Warn("generation events stopped", "seq", next.ev.Seq, "err", err)
			}
			p.cancel() // nothing may follow the event that could not be stored
		} else {
			p.seq, p.streamSeq = next.ev.Seq, streamSeq
			p.markStored()
		}
		p.mu.Unlock()
	}
}

// send publishes q right after stream sequence after (the previous event) and returns
// its stream sequence. When the acknowledgement does not come (NATS unreachable or
// restarting) it looks at the subject: an event stored meanwhile that is q counts as
// sent; if nothing was stored it sends q again. Another publisher's event after ours
// (a terminal event, or another worker that took the answer over) ends the sending.
func (p *genPublisher) send(q queuedEvent, after uint64) (uint64, error) {
	body, err := json.Marshal(q.ev)
	if err != nil {
		return 0, fmt.Errorf("encode generation event: %w", err)
	}
	wait := 100 * time.Millisecond
	for warned := false; ; {
		ctx, cancel := context.WithTimeout(p.ctx, publishAckWait)
		seq, err := publishGen(ctx, p.js.Conn(), p.subject, body, q.header, after)
		cancel()
		if err == nil {
			return seq, nil
		}
		if p.ctx.Err() != nil {
			return 0, p.ctx.Err()
		}
		if !warned {
			p.log.Warn("generation event not acknowledged, checking the subject", "type", q.ev.Type, "seq", q.ev.Seq, "err", err)
			warned = true
		}
		ctx, cancel = context.WithTimeout(p.ctx, publishAckWait)
		last, lerr := readLast(ctx, p.stream, p.messageID)
		cancel()
		switch {
		case lerr != nil:
			// Still unreachable: try again (the compare-and-set makes a resend safe).
		case last.streamSeq == after:
			// Not stored: send it again.
		case last.ok && last.ev.Seq == q.ev.Seq && last.ev.Type == q.ev.Type && last.ev.Text == q.ev.Text &&
			last.state != nil:
			return last.streamSeq, nil
		case last.terminal():
			return 0, errAlreadyTerminal
		default:
			return 0, fmt.Errorf("event seq %d of another publisher after ours", last.ev.Seq)
		}
		select {
		case <-p.ctx.Done():
			return 0, p.ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (p *genPublisher) markStored() {
	if p.stored != nil {
		p.stored.Store(time.Now().UnixNano())
	}
}

// drain flushes buffered text and waits until every event so far is stored; when ctx
// ends first, the events not stored yet are dropped and the publisher stops.
func (p *genPublisher) drain(ctx context.Context) {
	p.mu.Lock()
	p.stopTimerLocked()
	p.flushLocked()
	idle := p.idle
	p.mu.Unlock()
	if idle == nil {
		return
	}
	select {
	case <-idle:
	case <-ctx.Done():
		p.log.Warn("generation events not acknowledged in time")
		p.cancel()
		<-idle
	}
}

// finish publishes the terminal event after everything before it is stored, unless
// the subject already ends with one (chat or a cancel handler finished it first). When
// every event of the attempt was stored, the subject's last sequence is known and the
// event is published right after it without reading the subject first; if someone
// else published meanwhile, it falls back to reading it.
func (p *genPublisher) finish(ctx context.Context, ev events.GenerationEvent) error {
	p.drain(ctx)
	p.mu.Lock()
	st := p.state
	known := p.ctx.Err() == nil && p.streamSeq > 0
	seq, after := p.seq, p.streamSeq
	p.mu.Unlock()
	if known {
		e := ev
		e.Seq = seq + 1
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode generation event: %w", err)
		}
		_, err = publishGen(ctx, p.js.Conn(), p.subject, body, st.encode(), after)
		if err == nil {
			p.finishFast++
			p.markStored()
			return nil
		}
		// Someone else published after our last event, or the ack was lost: read it.
	}
	if _, err := publishCAS(ctx, p.js, p.stream, p.messageID, ev, st); err != nil && !errors.Is(err, errAlreadyTerminal) {
		return err
	}
	return nil
}
