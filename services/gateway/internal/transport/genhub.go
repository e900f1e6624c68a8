package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// Settings of the generation hub.
const (
	// listenerBuffer is how many live events a stream (an answer's or a chat's) may
	// have waiting before its hub drops the next ones for it; the stream then catches
	// up from JetStream.
	listenerBuffer = 32
	// hubCheckEvery is how often (at most) the hub looks whether its subscription may
	// have missed events (messages dropped as a slow consumer, a reconnect).
	hubCheckEvery = 250 * time.Millisecond
	// replayBatch bounds one fetch of stored events.
	replayBatch = 256
	// genSubjectPrefix is SubjectGeneration's prefix: the rest of the subject is the
	// message id.
	genSubjectPrefix = "gen."
)

// genHub is this replica's one subscription to every answer's generation events
// (core NATS on SubjectGenerationsAll: JetStream publishes are ordinary NATS messages,
// so it sees them live). It hands each event to the open streams of its message. It
// never blocks on a stream: a listener whose buffer is full loses the event and is
// told so, and catches up from JetStream (which holds every event) itself.
type genHub struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	sub *nats.Subscription

	listeners listeners[string, []byte] // by message id

	// epoch changes whenever the subscription may have missed events: every stream
	// then catches up from JetStream.
	epoch     atomic.Uint64
	checkedAt atomic.Int64 // unix nanos of the last check
	checkMu   sync.Mutex
	dropped   int
	reconnect uint64

	streamMu sync.Mutex
	stream   jetstream.Stream
}

// genListener is one open answer stream's inbox of live events.
type genListener = listener[string, []byte]

func newGenHub(nc *nats.Conn, js jetstream.JetStream) (*genHub, error) {
	h := &genHub{nc: nc, js: js}
	sub, err := nc.Subscribe(events.SubjectGenerationsAll, h.dispatch)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", events.SubjectGenerationsAll, err)
	}
	// Far more than a burst of events can fill while dispatch is cheap; whatever is
	// dropped anyway is noticed (Dropped) and caught up from JetStream.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return nil, fmt.Errorf("subscription limits: %w", err)
	}
	h.sub = sub
	h.reconnect = nc.Stats().Reconnects
	return h, nil
}

// dispatch runs on the subscription's goroutine, once per generation event.
func (h *genHub) dispatch(m *nats.Msg) {
	id, ok := strings.CutPrefix(m.Subject, genSubjectPrefix)
	if !ok {
		return
	}
	h.listeners.offer(id, m.Data)
}

// listen registers a stream of message id; it receives every event published from
// now on (unless its buffer overflows). forget must follow.
func (h *genHub) listen(id string) *genListener {
	return h.listeners.add(id, listenerBuffer, nil)
}

func (h *genHub) forget(l *genListener) { h.listeners.remove(l) }

// open reports the number of registered streams (tests).
func (h *genHub) open() int { return h.listeners.count() }

// currentEpoch returns the epoch, first checking (at most every hubCheckEvery, for
// all streams together) whether the subscription dropped messages or reconnected
// since the last check.
func (h *genHub) currentEpoch() uint64 {
	now := time.Now().UnixNano()
	if last := h.checkedAt.Load(); now-last >= int64(hubCheckEvery) && h.checkedAt.CompareAndSwap(last, now) {
		h.checkMu.Lock()
		dropped, _ := h.sub.Dropped()
		rc := h.nc.Stats().Reconnects
		if dropped != h.dropped || rc != h.reconnect {
			h.dropped, h.reconnect = dropped, rc
			h.epoch.Add(1)
		}
		h.checkMu.Unlock()
	}
	return h.epoch.Load()
}

// storedEvent is one generation event as JetStream holds it.
type storedEvent struct {
	ev        events.GenerationEvent
	data      []byte
	streamSeq uint64
}

// generations returns the GENERATIONS stream handle, looked up once.
func (h *genHub) generations(ctx context.Context) (jetstream.Stream, error) {
	h.streamMu.Lock()
	defer h.streamMu.Unlock()
	if h.stream != nil {
		return h.stream, nil
	}
	st, err := h.js.Stream(ctx, events.StreamGenerations)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", events.StreamGenerations, err)
	}
	h.stream = st
	return st, nil
}

// last reads the newest stored event of message id; ok is false when there is none.
func (h *genHub) last(ctx context.Context, id string) (storedEvent, bool, error) {
	st, err := h.generations(ctx)
	if err != nil {
		return storedEvent{}, false, err
	}
	raw, err := st.GetLastMsgForSubject(ctx, events.SubjectGeneration(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return storedEvent{}, false, nil
	}
	if err != nil {
		return storedEvent{}, false, fmt.Errorf("read last generation event: %w", err)
	}
	se := storedEvent{data: raw.Data, streamSeq: raw.Sequence}
	if err := json.Unmarshal(raw.Data, &se.ev); err != nil {
		return storedEvent{}, false, fmt.Errorf("decode last generation event: %w", err)
	}
	return se, true, nil
}

// stored reads the stored events of message id up to stream sequence upTo (the
// newest one, from last) with a short-lived consumer, deleted right after. It may
// return fewer when ctx ends first.
func (h *genHub) stored(ctx context.Context, id string, upTo uint64) ([][]byte, error) {
	cons, err := h.js.CreateConsumer(ctx, events.StreamGenerations, jetstream.ConsumerConfig{
		FilterSubject:     events.SubjectGeneration(id),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("create replay consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = h.js.DeleteConsumer(dctx, events.StreamGenerations, cons.CachedInfo().Name)
	}()
	var out [][]byte
	for {
		wait := time.Second
		if d, ok := ctx.Deadline(); ok {
			wait = max(time.Until(d), 10*time.Millisecond)
		}
		batch, err := cons.Fetch(replayBatch, jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, fmt.Errorf("fetch stored events: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, m.Data())
			if meta, err := m.Metadata(); err == nil && meta.Sequence.Stream >= upTo {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("fetch stored events: %w", err)
		}
		if n == 0 || ctx.Err() != nil {
			return out, nil // what there is: the live side or the next catch-up does the rest
		}
	}
}

// genEvent is a generation event as the stream relays it. Deltas in the publisher's
// canonical form are not decoded: their SSE data is cut out of the payload.
type genEvent struct {
	typ string
	seq int64
	// deltaTail is, for a delta taken the fast way, the payload from `"seq":` to the
	// end: "{" + deltaTail is the SSE data {"seq":n,"text":"..."}.
	deltaTail []byte
	// ev is the decoded event, for every other case.
	ev *events.GenerationEvent
}

func (e genEvent) final() bool { return e.typ == events.GenDone || e.typ == events.GenError }

var deltaPrefix = []byte(`{"type":"delta",`)

// parseGenEvent reads a generation event. A delta in exactly the form encoding/json
// gives events.GenerationEvent ({"type":"delta","seq":n,"text":"..."}, no other
// field) is read without decoding; anything else is decoded.
func parseGenEvent(data []byte) (genEvent, error) {
	if seq, ok := canonicalDelta(data); ok {
		return genEvent{typ: events.GenDelta, seq: seq, deltaTail: data[len(deltaPrefix):]}, nil
	}
	ev := new(events.GenerationEvent)
	if err := json.Unmarshal(data, ev); err != nil {
		return genEvent{}, err
	}
	return genEvent{typ: ev.Type, seq: ev.Seq, ev: ev}, nil
}

// canonicalDelta reports whether data is {"type":"delta","seq":<n>,"text":"<s>"} with
// nothing after the text, and returns n.
func canonicalDelta(data []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(data, deltaPrefix)
	if !ok {
		return 0, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte(`"seq":`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, false
	}
	seq, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	if err != nil {
		return 0, false
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"text":"`))
	if !ok {
		return 0, false
	}
	// The text: a JSON string whose closing quote must be followed by "}" and the end.
	for j := 0; j < len(rest); j++ {
		switch c := rest[j]; {
		case c == '\\':
			j++
		case c < 0x20:
			return 0, false
		case c == '"':
			if j == len(rest)-2 && rest[j+1] == '}' && utf8.Valid(rest[:j]) {
				return seq, true
			}
			return 0, false
		}
	}
	return 0, false
}
