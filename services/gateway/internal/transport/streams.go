package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	// client has gone, should the explicit stop not reach it.
	consumerInactive = 30 * time.Second
	// terminalGrace is how long a message may be stored as finished without its final
	// event showing up before the stream sends the final state itself.
	terminalGrace   = 10 * time.Second
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

// streamMessage relays an answer's generation events as server-sent events, from
// JetStream, so that any replica can serve it and resume it after any sequence number.
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
	msg, err := s.getMessage(r.Context(), p.UserID, id)
	if err != nil {
		return err
	}
	if s.js == nil {
		return events.ErrUnavailable
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()

	cctx, ccancel := context.WithTimeout(ctx, s.opts.ChatTimeout)
	cons, err := s.js.OrderedConsumer(cctx, events.StreamGenerations, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{events.SubjectGeneration(id)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: consumerInactive,
	})
	ccancel()
	if err != nil {
		s.log.Warn("open generation stream", append(logAttrs(r), "message_id", id, "err", err)...)
		return events.ErrUnavailable
	}
	var pending uint64
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}

	sw, err := sse.Start(w, s.opts.StreamWriteTimeout)
	if err != nil {
		s.log.Warn("start event stream", append(logAttrs(r), "err", err)...)
		return nil
	}
	defer s.metrics.StreamOpened("message")()

	if pending == 0 && events.Terminal(msg.Status) {
		// Finished, and its events have expired (or there never were any): the stored
		// message is the whole story.
		_ = sendStored(sw, msg, after)
		return nil
	}

	it, err := cons.Messages()
	if err != nil {
		s.log.Warn("read generation stream", append(logAttrs(r), "message_id", id, "err", err)...)
		return nil
	}
	defer it.Stop()
	stopIt := context.AfterFunc(ctx, it.Stop)
	defer stopIt()

	last := after
	var finishedSince time.Time
	for {
		nctx, ncancel := context.WithTimeout(ctx, s.opts.KeepAlive)
		m, err := it.Next(jetstream.NextContext(nctx))
		ncancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("generation stream broke", append(logAttrs(r), "message_id", id, "err", err)...)
				return nil
			}
			if err := sw.Comment("keepalive"); err != nil {
				return nil
			}
			// A worker that stored the final state but died before publishing the final
			// event must not leave the client waiting forever.
			cur, err := s.getMessage(ctx, p.UserID, id)
			if err != nil {
				if ctx.Err() == nil && errors.Is(err, events.ErrNotFound) {
					return nil
				}
				continue
			}
			if !events.Terminal(cur.Status) {
				finishedSince = time.Time{}
				continue
			}
			if finishedSince.IsZero() {
				finishedSince = time.Now()
				continue
			}
			if time.Since(finishedSince) >= terminalGrace {
				_ = sendTerminal(sw, last+1, cur)
				return nil
			}
			continue
		}
		var ev events.GenerationEvent
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			s.log.Warn("undecodable generation event", append(logAttrs(r), "message_id", id, "err", err)...)
			continue
		}
		final := ev.Type == events.GenDone || ev.Type == events.GenError
		if ev.Seq <= after {
			if final {
				return nil
			}
			continue
		}
		if final && ev.Message == nil {
			if cur, err := s.getMessage(ctx, p.UserID, id); err == nil {
				ev.Message = &cur
			} else {
				ev.Message = &msg
			}
		}
		if err := writeGeneration(sw, ev); err != nil {
			return nil
		}
		last = ev.Seq
		if final {
			return nil
		}
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
// changes) to a second tab or device.
func (s *Server) chatEvents(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	c, err := s.ownedChat(r)
	if err != nil {
		return err
	}
	if s.js == nil {
		return events.ErrUnavailable
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{events.SubjectChatEvents},
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: consumerInactive,
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, n+1
		}
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, s.opts.ChatTimeout)
	cons, err := s.js.OrderedConsumer(cctx, events.StreamChatEvents, cfg)
	ccancel()
	if err != nil {
		s.log.Warn("open chat event stream", append(logAttrs(r), "chat_id", c.ID, "err", err)...)
		return events.ErrUnavailable
	}
	sw, err := sse.Start(w, s.opts.StreamWriteTimeout)
	if err != nil {
		s.log.Warn("start event stream", append(logAttrs(r), "err", err)...)
		return nil
	}
	defer s.metrics.StreamOpened("chat")()
	it, err := cons.Messages()
	if err != nil {
		s.log.Warn("read chat event stream", append(logAttrs(r), "chat_id", c.ID, "err", err)...)
		return nil
	}
	defer it.Stop()
	stopIt := context.AfterFunc(ctx, it.Stop)
	defer stopIt()

	for {
		nctx, ncancel := context.WithTimeout(ctx, s.opts.KeepAlive)
		m, err := it.Next(jetstream.NextContext(nctx))
		ncancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("chat event stream broke", append(logAttrs(r), "chat_id", c.ID, "err", err)...)
				return nil
			}
			if err := sw.Comment("keepalive"); err != nil {
				return nil
			}
			continue
		}
		name, data, ok := chatEvent(m.Data(), c.ID, p.UserID)
		if !ok {
			continue
		}
		var seq int64
		if meta, err := m.Metadata(); err == nil {
			seq = int64(meta.Sequence.Stream)
		}
		if err := sw.Raw(seq, name, data); err != nil {
			return nil
		}
	}
}

// chatEvent decodes a CHAT_EVENTS message and returns its SSE name and data when it
// belongs to chatID of userID.
func chatEvent(raw []byte, chatID, userID string) (string, []byte, bool) {
	var env events.Event
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", nil, false
	}
	var probe struct {
		ChatID string `json:"chat_id"`
		UserID string `json:"user_id"`
		Chat   *struct {
			ID string `json:"id"`
		} `json:"chat"`
	}
	if err := json.Unmarshal(env.Data, &probe); err != nil {
		return "", nil, false
	}
	id := probe.ChatID
	if id == "" && probe.Chat != nil {
		id = probe.Chat.ID
	}
	if id != chatID || probe.UserID != userID {
		return "", nil, false
	}
	name, ok := strings.CutPrefix(env.Type, chatEventPrefix)
	if !ok {
		return "", nil, false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, env.Data); err != nil {
		return "", nil, false
	}
	return name, buf.Bytes(), true
}
