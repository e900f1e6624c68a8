package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway/internal/sse"
)

// Stream settings.
const (
	// consumerInactive lets the server drop a stream's ephemeral consumer soon after the
	// client has gone, should the explicit delete not reach it.
	consumerInactive = 30 * time.Second
	// terminalGrace is how long a message may be stored as finished without its final
	// event showing up before the stream sends the final state itself.
	terminalGrace = 10 * time.Second
	// outageGrace is how long an open stream waits for a lost NATS connection to come
	// back before it ends; the client then resumes with Last-Event-ID on any replica.
	outageGrace = 3 * time.Second
	// pulseEvery is how often an open stream checks the NATS connection.
	pulseEvery = time.Second
	// deleteTimeout bounds the delete of a stream's consumer when the stream ends.
	deleteTimeout   = 2 * time.Second
	chatEventPrefix = "chat.events."
)

// Payloads of the SSE events of an answer's stream.
type (
	deltaData struct {
		Seq  int64  `json:"seq"`
		Text string `json:"text"`
	}
	resetData struct {
		Seq int64 `json:"seq"`
	}
	waitingData struct {
		Reason  string     `json:"reason"`
		RetryAt *time.Time `json:"retry_at,omitempty"`
	}
	doneData struct {
		Message events.Message `json:"message"`
	}
	errorData struct {
		Error   *events.Error  `json:"error"`
		Message events.Message `json:"message"`
	}
)

// genericFailure is the error shown for a failed answer that carries none.
var genericFailure = &events.Error{Code: events.CodeProviderError, Message: "The answer could not be generated."}

// streamContext is r's context, also cancelled when the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.shutdown, cancel)
	return ctx, func() { stop(); cancel() }
}

// resumeAfter reads the sequence number a client already has: Last-Event-ID (set by
// a reconnecting EventSource) or ?after=n.
func resumeAfter(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, events.Errorf(events.CodeInvalidInput, "after: must be a non-negative integer.")
	}
	return n, nil
}

// streamMessage relays an answer's generation events as server-sent events. Live
// events come from the replica's one subscription to every answer (genHub); what the
// client has not seen and was published before the stream opened (or was missed live)
// is read from JetStream, so that any replica can serve a stream and resume it after
// any sequence number. The replica keeps nothing about the stream: where to resume
// comes from the client (Last-Event-ID or ?after=n), everything else from JetStream
// and chat.
func (s *Server) streamMessage(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := messageID(r)
	if err != nil {
		return err
	}
	after, err := resumeAfter(r)
	if err != nil {
		return err
	}
	if s.hub == nil || s.nc == nil || !s.nc.IsConnected() {
		return events.ErrUnavailable
	}
	// Who owns the message: an answer this user has just asked for through this
	// replica is known without asking chat (see sentAnswers); any other is asked for.
	msg, known := s.sent.lookup(p.UserID, id)
	if !known {
		if msg, err = s.getMessage(r.Context(), p.UserID, id); err != nil {
			return err
		}
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()

	// Listen first, then read what is stored: an event published in between is seen
	// by both and relayed once (by its seq).
	l := s.hub.listen(id)
	defer s.hub.forget(l)
	epoch := s.hub.currentEpoch()
	rctx, rcancel := context.WithTimeout(ctx, s.opts.ChatTimeout)
	last, stored, err := s.hub.last(rctx, id)
	rcancel()
	if err != nil {
		s.log.Warn("open generation stream", append(logAttrs(r), "message_id", id, "err", err)...)
		return events.ErrUnavailable
	}
	if known && stored && isFinal(last.ev) {
		// Finished: chat's stored message is the final state (and the answer may have
		// been replaced since, which makes it not_found).
		if msg, err = s.getMessage(r.Context(), p.UserID, id); err != nil {
			return err
		}
	}

	sw, err := sse.Start(w, s.opts.StreamWriteTimeout)
	if err != nil {
		s.log.Warn("start event stream", append(logAttrs(r), "err", err)...)
		return nil
	}
	defer s.metrics.StreamOpened("message")()

	finished := events.Terminal(msg.Status)
	if !stored && finished {
		// Finished, and its events have expired (or there never were any): the stored
		// message is the whole story.
		_ = sendStored(sw, msg, after)
		return nil
	}
	g := &genRelay{s: s, r: r, sw: sw, l: l, userID: p.UserID, id: id, msg: msg, after: after, last: after, epoch: epoch}
	if stored && finished && after == 0 && isFinal(last.ev) && g.compact(last) {
		return nil
	}
	if stored {
		if final, err := g.catchUp(ctx, last); final || err != nil {
			return nil
		}
	}
	g.lastWrite = time.Now()
	every := min(s.opts.KeepAlive, pulseEvery)
	pulse := time.NewTicker(every)
	defer pulse.Stop()
	var downSince time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case data := <-l.ch:
			if final, err := g.live(ctx, data); final || err != nil {
				return nil
			}
		case <-l.kick:
			// Events were dropped for this stream (it fell behind): catch up.
			if final, err := g.resync(ctx); final || err != nil {
				return nil
			}
		case <-pulse.C:
			if s.outage(&downSince) {
				s.log.Warn("nats unavailable: ending the stream for the client to resume", append(logAttrs(r), "message_id", id)...)
				return nil
			}
			if downSince.IsZero() && s.hub.currentEpoch() != g.epoch {
				// The subscription may have missed events (reconnect, slow consumer).
				if final, err := g.resync(ctx); final || err != nil {
					return nil
				}
			}
			if time.Since(g.lastWrite)+every < s.opts.KeepAlive {
				continue // the next tick is still in time
			}
			if err := sw.Comment("keepalive"); err != nil {
				return nil
			}
			g.lastWrite = time.Now()
			if downSince.IsZero() {
				if end := g.checkStored(ctx); end {
					return nil
				}
			}
		}
	}
}

// outage reports whether NATS has been unreachable for longer than outageGrace;
// downSince keeps when it went.
func (s *Server) outage(downSince *time.Time) bool {
	if s.nc.IsConnected() {
		*downSince = time.Time{}
		return false
	}
	if downSince.IsZero() {
		*downSince = time.Now()
	}
	return time.Since(*downSince) >= outageGrace
}

// genRelay is the state of one answer stream: what the client has (last: the seq of
// the newest event it has, from the client or sent here), the hub epoch it is in step
// with, and when the stored message was first seen finished without its final event.
type genRelay struct {
	s             *Server
	r             *http.Request
	sw            *sse.Writer
	l             *genListener
	userID, id    string
	msg           events.Message
	after, last   int64
	epoch         uint64
	lastWrite     time.Time
	finishedSince time.Time
}

// retryGap is how long a stream waits before looking again for an event it missed
// live that JetStream did not have yet.
const retryGap = 100 * time.Millisecond

// live handles one event from the hub. An event beyond the next expected one means
// some were missed: they are read from JetStream first.
func (g *genRelay) live(ctx context.Context, data []byte) (final bool, err error) {
	e, err := parseGenEvent(data)
	if err != nil {
		g.s.log.Warn("undecodable generation event", append(logAttrs(g.r), "message_id", g.id, "err", err)...)
		return false, nil
	}
	for try := 0; e.seq > g.last+1 && try < 2; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(retryGap):
			}
		}
		if final, err := g.resync(ctx); final || err != nil {
			return final, err
		}
	}
	return g.relay(ctx, e)
}

// resync relays whatever JetStream holds after what the client has.
func (g *genRelay) resync(ctx context.Context) (final bool, err error) {
	g.epoch = g.s.hub.currentEpoch()
	g.l.lost.Store(false)
	rctx, cancel := context.WithTimeout(ctx, g.s.opts.ChatTimeout)
	last, ok, err := g.s.hub.last(rctx, g.id)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			g.s.log.Warn("catch up generation events", append(logAttrs(g.r), "message_id", g.id, "err", err)...)
		}
		return false, err
	}
	if !ok {
		return false, nil
	}
	return g.catchUp(ctx, last)
}

// catchUp relays the stored events after what the client has, up to last (the newest
// stored event).
func (g *genRelay) catchUp(ctx context.Context, last storedEvent) (final bool, err error) {
	if last.ev.Seq <= g.last {
		return isFinal(last.ev), nil
	}
	if last.ev.Seq == g.last+1 {
		return g.relayData(ctx, last.data)
	}
	rctx, cancel := context.WithTimeout(ctx, g.s.opts.ChatTimeout)
	all, err := g.s.hub.stored(rctx, g.id, last.streamSeq)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			g.s.log.Warn("read stored generation events", append(logAttrs(g.r), "message_id", g.id, "err", err)...)
		}
		return false, err
	}
	for _, data := range all {
		if final, err := g.relayData(ctx, data); final || err != nil {
			return final, err
		}
	}
	return false, nil
}

func (g *genRelay) relayData(ctx context.Context, data []byte) (final bool, err error) {
	e, err := parseGenEvent(data)
	if err != nil {
		g.s.log.Warn("undecodable generation event", append(logAttrs(g.r), "message_id", g.id, "err", err)...)
		return false, nil
	}
	return g.relay(ctx, e)
}

// openBrace starts the SSE data of a delta taken the fast way.
var openBrace = []byte("{")

// relay sends one event (unless the client has it already) and reports whether it
// was the final event.
func (g *genRelay) relay(ctx context.Context, e genEvent) (final bool, err error) {
	final = e.final()
	if e.seq <= g.last {
		// The client has it. Only a final event under the seq this stream has just sent
		// (not the client's own resume point) is still relayed: two publishers raced
		// for that seq, the one sent here lost, and the answer is over.
		if !final || e.seq != g.last || e.seq <= g.after {
			return final, nil
		}
	}
	if e.deltaTail != nil {
		err = g.sw.Raw(e.seq, events.GenDelta, openBrace, e.deltaTail)
	} else {
		ev := *e.ev
		if final && ev.Message == nil {
			if cur, err := g.s.getMessage(ctx, g.userID, g.id); err == nil {
				ev.Message = &cur
			} else {
				ev.Message = &g.msg
			}
		}
		err = writeGeneration(g.sw, ev)
	}
	if err != nil {
		return final, err
	}
	g.last, g.lastWrite = e.seq, time.Now()
	return final, nil
}

// compact sends a finished answer whose final event (last, seq n) is stored as its
// whole text in one delta with id n-1 and then the final event with id n (so a client
// resuming after n-1 gets exactly the final event), instead of every delta of every
// attempt. It reports false when that cannot be numbered (text, but n < 2): the
// events are then relayed as they are.
func (g *genRelay) compact(last storedEvent) bool {
	stored := g.msg
	if last.ev.Message != nil {
		stored = *last.ev.Message
	}
	n := last.ev.Seq
	if n < 2 && stored.Content != "" {
		return false
	}
	if stored.Content != "" {
		if err := g.sw.Event(n-1, events.GenDelta, deltaData{Seq: n - 1, Text: stored.Content}); err != nil {
			return true
		}
	}
	_ = sendTerminal(g.sw, n, stored)
	return true
}

// checkStored ends a stream whose message chat has stored as finished while its final
// event never came (a worker that died between storing and publishing): after
// terminalGrace it sends the stored final state itself.
func (g *genRelay) checkStored(ctx context.Context) (end bool) {
	cur, err := g.s.getMessage(ctx, g.userID, g.id)
	if err != nil {
		// not_found: the answer is gone. unauthenticated: the access token this stream
		// was opened with has expired (chat verifies it), so the client resumes with
		// fresh credentials.
		var e *events.Error
		return ctx.Err() == nil && errors.As(err, &e) &&
			(e.Code == events.CodeNotFound || e.Code == events.CodeUnauthenticated)
	}
	if !events.Terminal(cur.Status) {
		g.finishedSince = time.Time{}
		return false
	}
	if g.finishedSince.IsZero() {
		g.finishedSince = time.Now()
		return false
	}
	if time.Since(g.finishedSince) < terminalGrace {
		return false
	}
	_ = sendTerminal(g.sw, g.last+1, cur)
	return true
}

func isFinal(ev events.GenerationEvent) bool {
	return ev.Type == events.GenDone || ev.Type == events.GenError
}

// feed reads an ordered consumer on its own goroutine, so that a stream handler can
// wait at once for the next message, its keepalive tick, NATS trouble and the client
// leaving. close stops it and deletes its consumer on the server.
type feed struct {
	s      *Server
	stream string
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	msgs   chan jetstream.Msg
	errc   chan error
	done   chan struct{}
}

// chatResumePoint is the CHAT_EVENTS sequence after which a stream resuming with
// Last-Event-ID after starts: after itself, unless the stream ends before it. Then the
// stream was recreated (its numbers started again) and the client's id means nothing:
// it gets every stored event of its chat, from the start (chat events are states, so a
// repeat is harmless; a live event numbered below its old id must not be skipped).
func (s *Server) chatResumePoint(ctx context.Context, after uint64) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.ChatTimeout)
	defer cancel()
	st, err := s.js.Stream(cctx, events.StreamChatEvents)
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", events.StreamChatEvents, err)
	}
	if last := st.CachedInfo().State.LastSeq; after > last {
		s.log.Info("Last-Event-ID past the end of the chat event stream (recreated?): resuming from its start",
			"last_event_id", after, "last_seq", last)
		return 0, nil
	}
	return after, nil
}

// openFeed creates an ordered consumer on stream and starts reading it; pending is the
// number of messages it had to deliver when it was created.
func (s *Server) openFeed(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (*feed, uint64, error) {
	if s.js == nil || s.nc == nil || !s.nc.IsConnected() {
		return nil, 0, events.ErrUnavailable
	}
	cfg.InactiveThreshold = consumerInactive
	cctx, cancel := context.WithTimeout(ctx, s.opts.ChatTimeout)
	defer cancel()
	cons, err := s.js.OrderedConsumer(cctx, stream, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("create ordered consumer on %s: %w", stream, err)
	}
	var pending uint64
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, 0, fmt.Errorf("read ordered consumer on %s: %w", stream, err)
	}
	f := &feed{s: s, stream: stream, cons: cons, it: it,
		msgs: make(chan jetstream.Msg), errc: make(chan error, 2), done: make(chan struct{})}
	go f.read()
	return f, pending, nil
}

func (f *feed) read() {
	for {
		m, err := f.it.Next()
		if err != nil {
			f.errc <- err
			return
		}
		select {
		case f.msgs <- m:
		case <-f.done:
			return
		}
	}
}

// close stops reading and deletes the consumer, so that a client going away leaves
// nothing behind on the server (its inactivity threshold is only the fallback).
func (f *feed) close() {
	close(f.done)
	f.it.Stop()
	info := f.cons.CachedInfo()
	if info == nil || !f.s.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	if err := f.s.js.DeleteConsumer(ctx, f.stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		f.s.log.Debug("delete stream consumer", "stream", f.stream, "consumer", info.Name, "err", err)
	}
}

func (s *Server) getMessage(ctx context.Context, userID, id string) (events.Message, error) {
	rep, err := call[events.MessageRef, events.MessageReply](ctx, s.nc, s.opts.ChatTimeout, events.SubjectMessageGet,
		events.MessageRef{UserID: userID, MessageID: id})
	return rep.Message, err
}

// writeGeneration sends one generation event in its SSE form; unknown types are skipped.
func writeGeneration(sw *sse.Writer, ev events.GenerationEvent) error {
	switch ev.Type {
	case events.GenDelta:
		return sw.Event(ev.Seq, events.GenDelta, deltaData{Seq: ev.Seq, Text: ev.Text})
	case events.GenReset:
		return sw.Event(ev.Seq, events.GenReset, resetData{Seq: ev.Seq})
	case events.GenWaiting:
		return sw.Event(ev.Seq, events.GenWaiting, waitingData{Reason: ev.Reason, RetryAt: ev.RetryAt})
	case events.GenDone:
		return sw.Event(ev.Seq, events.GenDone, doneData{Message: *ev.Message})
	case events.GenError:
		e := ev.Error
		if e == nil {
			e = ev.Message.Error
		}
		if e == nil {
			e = genericFailure
		}
		return sw.Event(ev.Seq, events.GenError, errorData{Error: e, Message: *ev.Message})
	}
	return nil
}

// sendTerminal sends the final event for a stored finished message.
func sendTerminal(sw *sse.Writer, seq int64, m events.Message) error {
	if m.Status == events.StatusFailed {
		return writeGeneration(sw, events.GenerationEvent{Type: events.GenError, Seq: seq, Error: m.Error, Message: &m})
	}
	return writeGeneration(sw, events.GenerationEvent{Type: events.GenDone, Seq: seq, Message: &m})
}

// sendStored streams a finished message whose events are gone: its whole text as one
// delta, then its final event. A client resuming after n first gets a reset, since
// what it holds may not be a prefix of the stored text.
func sendStored(sw *sse.Writer, m events.Message, after int64) error {
	seq := after + 1
	if after > 0 {
		if err := sw.Event(seq, events.GenReset, resetData{Seq: seq}); err != nil {
			return err
		}
		seq++
	}
	if m.Content != "" {
		if err := sw.Event(seq, events.GenDelta, deltaData{Seq: seq, Text: m.Content}); err != nil {
			return err
		}
		seq++
	}
	return sendTerminal(sw, seq, m)
}

// chatEvents relays the live events of one chat (new messages, finished answers, chat
// changes) to a second tab or device. Event ids are CHAT_EVENTS stream sequences, so a
// client reconnecting with Last-Event-ID misses nothing on any replica. Live events
// come from the replica's one reader of CHAT_EVENTS (chatHub); those after the client's
// Last-Event-ID that came before the stream opened are read from JetStream.
func (s *Server) chatEvents(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	c, err := s.ownedChat(r)
	if err != nil {
		return err
	}
	var after uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			after = n
		}
	}
	if s.chats == nil || s.nc == nil || !s.nc.IsConnected() {
		return events.ErrUnavailable
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()

	// Listen first, then read what is stored: the live events buffer meanwhile, and
	// the stored ones reach at least as far as the hub had read when the stream
	// registered, so nothing falls in between (and covered drops the overlap).
	refuse := func(err error) error {
		s.log.Warn("open chat event stream", append(logAttrs(r), "chat_id", c.ID, "err", err)...)
		return events.ErrUnavailable
	}
	key := chatKey{chatID: c.ID, userID: p.UserID}
	lctx, lcancel := context.WithTimeout(ctx, chatListenWait)
	l, run, seq, err := s.chats.listen(lctx, key)
	lcancel()
	if err != nil {
		return refuse(err)
	}
	defer s.chats.forget(l)
	cr := &chatRelay{s: s, r: r, l: l, key: key, covered: seq}
	var stored *feed
	var pending uint64
	if after > 0 {
		if cr.covered, err = s.chatResumePoint(ctx, after); err != nil {
			return refuse(err)
		}
		if stored, pending, err = cr.openCatchUp(ctx); err != nil {
			return refuse(err)
		}
	}
	sw, err := sse.Start(w, s.opts.StreamWriteTimeout)
	if err != nil {
		if stored != nil {
			stored.close()
		}
		s.log.Warn("start event stream", append(logAttrs(r), "err", err)...)
		return nil
	}
	cr.sw, cr.lastWrite = sw, time.Now()
	defer s.metrics.StreamOpened("chat")()
	if stored != nil {
		if err := cr.catchUp(ctx, stored, pending); err != nil {
			return nil
		}
	}

	every := min(s.opts.KeepAlive, pulseEvery)
	pulse := time.NewTicker(every)
	defer pulse.Stop()
	var downSince time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-run:
			// The replica's reader stopped: end, for the client to resume with
			// Last-Event-ID (on another replica, or here once the reader is back).
			s.log.Warn("chat event reader stopped: ending the stream for the client to resume", append(logAttrs(r), "chat_id", c.ID)...)
			return nil
		case ev := <-l.ch:
			if err := cr.live(ctx, ev); err != nil {
				return nil
			}
		case <-l.kick:
			// Events were dropped for this stream (it fell behind): catch up.
			if l.lost.Load() {
				if err := cr.resync(ctx); err != nil {
					return nil
				}
			}
		case <-pulse.C:
			if s.outage(&downSince) {
				s.log.Warn("nats unavailable: ending the stream for the client to resume", append(logAttrs(r), "chat_id", c.ID)...)
				return nil
			}
			if err := cr.keepaliveIfDue(every); err != nil {
				return nil
			}
		}
	}
}
