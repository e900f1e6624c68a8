package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway/internal/sse"
)

// Settings of the chat event hub.
const (
	// chatReaderRetryMin and chatReaderRetryMax bound the wait before the hub's reader
	// starts again after it stopped (or while CHAT_EVENTS does not exist yet: chat
	// creates it).
	chatReaderRetryMin = 250 * time.Millisecond
	chatReaderRetryMax = 10 * time.Second
	// chatReaderResets is how often the reader's ordered consumer may fail to be
	// recreated in a row (about 25 s with the client's backoff) before the reader
	// counts as broken: its streams then end and it starts over.
	chatReaderResets = 5
	// chatSetupTimeout bounds each JetStream call that sets the reader up.
	chatSetupTimeout = 5 * time.Second
	// chatStreamCheck is how often the reader checks that CHAT_EVENTS is still the
	// stream it started on (not deleted and created again, numbering from 1).
	chatStreamCheck = 2 * time.Second
	// chatListenWait is how long a new stream waits for the reader to (re)start before
	// it is refused.
	chatListenWait = 3 * time.Second
)

// errHubDown is the hub having no reader at the moment: a stream is refused (503) and
// the client tries again.
var errHubDown = errors.New("chat event reader not running")

// chatKey is whose events a chat stream gets: one chat of one user. Listeners are keyed
// by both, so a stream never gets another user's events, even for a guessed chat id.
type chatKey struct{ chatID, userID string }

// chatEvent is one CHAT_EVENTS message as chat streams relay it, decoded once.
type chatEvent struct {
	key  chatKey
	seq  uint64 // CHAT_EVENTS stream sequence: the SSE id
	name string // SSE event name: the type without "chat.events."
	data []byte // the payload, compacted to one line
}

// chatListener is one open chat stream's inbox of live events.
type chatListener = listener[chatKey, chatEvent]

// chatHub is this replica's one reader of CHAT_EVENTS (an ordered consumer on every
// chat event), instead of one consumer per open chat stream. It decodes each event once
// and hands it to the open streams of its chat and user. It never blocks on a stream:
// a listener whose buffer is full loses the event and is told so, and catches up from
// JetStream itself (see chatRelay). When the reader stops (its consumer cannot be
// recreated, or the hub is shut down), every stream registered with it ends and its
// client resumes with Last-Event-ID.
type chatHub struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	listeners listeners[chatKey, chatEvent]

	mu sync.Mutex
	// run is closed when the current reader stops; nil while none reads (at start,
	// between a stop and the restart), when streams are refused.
	run chan struct{}
	// interrupt stops the current reader (tests: a reader that broke).
	interrupt context.CancelFunc
	// up is closed when a reader starts; a new one is made when it stops.
	up chan struct{}

	// seq is the stream sequence of the last message read.
	seq atomic.Uint64
	// created is when the stream the current reader reads was created (UnixNano; tests
	// wait for a reader on a recreated stream with it).
	created atomic.Int64
	// dropped counts events not handed to a listener whose buffer was full.
	dropped atomic.Uint64
	// stopped is closed when the hub has stopped for good.
	stopped chan struct{}
}

func newChatHub(nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) *chatHub {
	return &chatHub{nc: nc, js: js, log: log, up: make(chan struct{}), stopped: make(chan struct{})}
}

// start reads CHAT_EVENTS in the background until ctx is done (or the connection is
// closed), starting the reader again whenever it stops.
func (h *chatHub) start(ctx context.Context) {
	go func() {
		defer close(h.stopped)
		wait := chatReaderRetryMin
		for {
			ran, err := h.read(ctx)
			if ctx.Err() != nil || h.nc.IsClosed() {
				return
			}
			if ran {
				wait = chatReaderRetryMin
			}
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				// Chat creates the stream when it starts: look again soon, so streams
				// work as soon as it has (looking up a stream is cheap).
				wait = chatReaderRetryMin
				h.log.Debug("chat event reader waiting for its stream", "stream", events.StreamChatEvents, "retry_in", wait)
			} else {
				h.log.Warn("chat event reader stopped", "err", err, "retry_in", wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, chatReaderRetryMax)
		}
	}()
}

// read runs one reader until it breaks or ctx is done; ran reports whether it got to
// read at all.
func (h *chatHub) read(ctx context.Context) (ran bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, chatSetupTimeout)
	defer cancel()
	st, err := h.js.Stream(cctx, events.StreamChatEvents)
	if err != nil {
		return false, fmt.Errorf("look up stream %s: %w", events.StreamChatEvents, err)
	}
	// From the message after the newest one, as DeliverNew would, but by number: an
	// ordered consumer recreated before it has delivered anything starts there again
	// (with DeliverNew it would skip what came in between).
	start := st.CachedInfo().State.LastSeq + 1
	cons, err := h.js.OrderedConsumer(cctx, events.StreamChatEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{events.SubjectChatEvents},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		InactiveThreshold: consumerInactive,
		MaxResetAttempts:  chatReaderResets,
	})
	if err != nil {
		return false, fmt.Errorf("create ordered consumer on %s: %w", events.StreamChatEvents, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return false, fmt.Errorf("read ordered consumer on %s: %w", events.StreamChatEvents, err)
	}
	defer h.deleteConsumer(cons)
	defer it.Stop()
	rctx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	stop := context.AfterFunc(rctx, it.Stop)
	defer stop()

	h.seq.Store(start - 1)
	created := st.CachedInfo().Created
	h.created.Store(created.UnixNano())
	go h.watchStream(rctx, created, interrupt)
	h.mu.Lock()
	h.run, h.interrupt = make(chan struct{}), interrupt
	close(h.up)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		close(h.run)
		h.run, h.interrupt, h.up = nil, nil, make(chan struct{})
		h.mu.Unlock()
	}()
	h.log.Debug("chat event reader started", "stream", events.StreamChatEvents, "from_seq", start)
	for {
		m, err := it.Next()
		if err != nil {
			return true, fmt.Errorf("read %s: %w", events.StreamChatEvents, err)
		}
		h.dispatch(m)
	}
}

// watchStream stops the reader (interrupt) when CHAT_EVENTS is no longer the stream
// created at created: deleted, or deleted and created again. The reader's ordered
// consumer would otherwise carry on in the new stream from its old position, skipping
// every event until the new numbers pass the old ones. Stopping ends the open streams;
// their clients resume with Last-Event-ID, which the new stream does not reach, so
// they get their chat's events from its start (chatResumePoint).
func (h *chatHub) watchStream(ctx context.Context, created time.Time, interrupt context.CancelFunc) {
	tick := time.NewTicker(chatStreamCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, chatSetupTimeout)
		st, err := h.js.Stream(cctx, events.StreamChatEvents)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
		case err != nil:
			continue // NATS trouble: the reader notices by itself
		case st.CachedInfo().Created.Equal(created):
			continue
		}
		h.log.Warn("chat event stream deleted or recreated: restarting the reader; open chat streams end and resume",
			"stream", events.StreamChatEvents)
		interrupt()
		return
	}
}

// deleteConsumer removes the reader's consumer when it stops (its inactivity threshold
// is only the fallback).
func (h *chatHub) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || !h.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	if err := h.js.DeleteConsumer(ctx, events.StreamChatEvents, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		h.log.Debug("delete chat event reader", "consumer", info.Name, "err", err)
	}
}

// dispatch runs on the reader's goroutine, once per message, in stream order.
func (h *chatHub) dispatch(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		h.log.Warn("chat event without metadata", "err", err)
		return
	}
	h.seq.Store(meta.Sequence.Stream)
	ev, ok := parseChatEvent(m.Data())
	if !ok {
		return
	}
	ev.seq = meta.Sequence.Stream
	if n := h.listeners.offer(ev.key, ev); n > 0 {
		h.dropped.Add(uint64(n))
	}
}

// listen registers a stream of key. It receives every event the reader reads after
// seq (the last one read when it registered), unless its buffer overflows; run is
// closed if the reader stops. forget must follow. While no reader runs (the hub is
// starting, or its reader restarts) it waits for one until ctx is done, then fails
// with errHubDown.
func (h *chatHub) listen(ctx context.Context, key chatKey) (l *chatListener, run <-chan struct{}, seq uint64, err error) {
	for {
		h.mu.Lock()
		if h.run != nil {
			// seq is read under the listeners' lock: an event read before it may still
			// reach the listener (dispatch stores seq, then offers), none read after it
			// is missed.
			l = h.listeners.add(key, listenerBuffer, func() { seq = h.seq.Load() })
			run = h.run
			h.mu.Unlock()
			return l, run, seq, nil
		}
		up := h.up
		h.mu.Unlock()
		select {
		case <-up:
		case <-h.stopped:
			return nil, nil, 0, errHubDown
		case <-ctx.Done():
			return nil, nil, 0, errHubDown
		}
	}
}

func (h *chatHub) forget(l *chatListener) { h.listeners.remove(l) }

// open reports the number of registered streams (tests).
func (h *chatHub) open() int { return h.listeners.count() }

// reading reports whether a reader runs.
func (h *chatHub) reading() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.run != nil
}

// stopReader stops the current reader as if it broke; it starts again soon (tests).
func (h *chatHub) stopReader() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.interrupt != nil {
		h.interrupt()
	}
}

// parseChatEvent decodes a CHAT_EVENTS message: whose it is, its SSE name and data.
// It reports false for anything a chat stream does not relay.
func parseChatEvent(raw []byte) (chatEvent, bool) {
	var env events.Event
	if err := json.Unmarshal(raw, &env); err != nil {
		return chatEvent{}, false
	}
	name, ok := strings.CutPrefix(env.Type, chatEventPrefix)
	if !ok {
		return chatEvent{}, false
	}
	var probe struct {
		ChatID string `json:"chat_id"`
		UserID string `json:"user_id"`
		Chat   *struct {
			ID string `json:"id"`
		} `json:"chat"`
	}
	if err := json.Unmarshal(env.Data, &probe); err != nil {
		return chatEvent{}, false
	}
	id := probe.ChatID
	if id == "" && probe.Chat != nil {
		id = probe.Chat.ID
	}
	if id == "" || probe.UserID == "" {
		return chatEvent{}, false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, env.Data); err != nil {
		return chatEvent{}, false
	}
	return chatEvent{key: chatKey{chatID: id, userID: probe.UserID}, name: name, data: buf.Bytes()}, true
}

// chatRelay is the state of one chat stream. covered is the CHAT_EVENTS sequence up to
// which the client has every event of its chat it is meant to have: its resume point
// (or, fresh, what the hub had read when the stream registered), then every event
// relayed and every stored message read past. An event at or below covered is never
// sent again, so live events and stored ones can overlap without a repeat.
//
// A stream that falls behind catches up from JetStream (it does not end): when the hub
// had to drop an event for it, the next event it takes from its buffer finds lost set
// (the drop came first), and it reads every stored chat event after covered up to the
// end of the stream before relaying anything newer; whatever was dropped is at or
// below that end, since the hub had read it already.
type chatRelay struct {
	s         *Server
	r         *http.Request
	sw        *sse.Writer
	l         *chatListener
	key       chatKey
	covered   uint64
	lastWrite time.Time
}

// live relays one event from the hub, reading the stored ones first if some were
// dropped for this stream before it.
func (c *chatRelay) live(ctx context.Context, ev chatEvent) error {
	if c.l.lost.Load() {
		if err := c.resync(ctx); err != nil {
			return err
		}
	}
	return c.send(ev)
}

// send relays ev unless the client has it.
func (c *chatRelay) send(ev chatEvent) error {
	if ev.seq <= c.covered {
		return nil
	}
	if err := c.sw.Raw(int64(ev.seq), ev.name, ev.data); err != nil {
		return err
	}
	c.covered, c.lastWrite = ev.seq, time.Now()
	return nil
}

// keepaliveIfDue writes an SSE comment when waiting for the next tick (every) would
// leave the client without a byte for longer than the keepalive interval, so the client
// and the proxies between see the stream is alive.
func (c *chatRelay) keepaliveIfDue(every time.Duration) error {
	if time.Since(c.lastWrite)+every < c.s.opts.KeepAlive {
		return nil
	}
	if err := c.sw.Comment("keepalive"); err != nil {
		return err
	}
	c.lastWrite = time.Now()
	return nil
}

// resync relays the stored events of the chat after covered.
func (c *chatRelay) resync(ctx context.Context) error {
	f, pending, err := c.openCatchUp(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.s.log.Warn("catch up chat events", append(logAttrs(c.r), "chat_id", c.key.chatID, "err", err)...)
		}
		return err
	}
	return c.catchUp(ctx, f, pending)
}

// openCatchUp opens a temporary ordered consumer on every chat event stored after
// covered; pending is how many there were when it was created. lost is cleared first:
// a drop from then on is noticed again, one before is among what the consumer reads.
func (c *chatRelay) openCatchUp(ctx context.Context) (*feed, uint64, error) {
	c.l.lost.Store(false)
	return c.s.openFeed(ctx, events.StreamChatEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectChatEvents},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    c.covered + 1,
	})
}

// catchUp relays the chat's events among the pending messages f delivers (up to the end
// of the stream when f was opened, which is all a catch-up must cover; later ones come
// live too), then closes f.
func (c *chatRelay) catchUp(ctx context.Context, f *feed, pending uint64) error {
	defer f.close()
	// A long catch-up (a busy stream, most of it other chats' events) must not leave
	// the client without a byte for longer than the keepalive interval.
	every := min(c.s.opts.KeepAlive, pulseEvery)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for read := uint64(0); read < pending; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := c.keepaliveIfDue(every); err != nil {
				return err
			}
		case err := <-f.errc:
			if ctx.Err() == nil {
				c.s.log.Warn("read stored chat events", append(logAttrs(c.r), "chat_id", c.key.chatID, "err", err)...)
			}
			return fmt.Errorf("read stored chat events: %w", err)
		case m := <-f.msgs:
			read++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("stored chat event metadata: %w", err)
			}
			seq := meta.Sequence.Stream
			if ev, ok := parseChatEvent(m.Data()); ok && ev.key == c.key {
				ev.seq = seq
				if err := c.send(ev); err != nil {
					return err
				}
			}
			c.covered = max(c.covered, seq)
			if meta.NumPending == 0 {
				return nil
			}
		}
	}
	return nil
}
