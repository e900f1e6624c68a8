// Package transport connects the inference use cases to NATS: the durable JetStream
// consumer that writes answers, the generation-event publisher and the models
// endpoint.
package transport

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// Worker consumes message.created events and writes the answers, at most Concurrency
// at a time.
type Worker struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Answerer *app.Answerer
	Log      *slog.Logger

	Concurrency   int
	MaxAckPending int
	// Coalesce merges deltas that arrive closer together than this.
	Coalesce time.Duration
	// Heartbeat is how often InProgress is sent while an answer is being written.
	Heartbeat time.Duration
	// RPCTimeout bounds each request to chat.
	RPCTimeout time.Duration
}

// Consumer settings (fixed by the cross-service design).
const (
	ackWait    = 30 * time.Second
	maxDeliver = 5
)

var errUserCancel = errors.New("cancelled by the user")

// Run sets up the streams and the consumer, then pulls and handles events until ctx is
// done. On stop it stops pulling, cancels the answers in flight, Naks them so another
// worker takes them, and waits for them.
func (w *Worker) Run(ctx context.Context) error {
	if w.Concurrency <= 0 {
		w.Concurrency = 1
	}
	if w.Heartbeat <= 0 {
		w.Heartbeat = 10 * time.Second
	}
	if w.RPCTimeout <= 0 {
		w.RPCTimeout = 10 * time.Second
	}
	if err := w.retrySetup(ctx, "create stream "+events.StreamGenerations, func(ctx context.Context) error {
		_, err := w.JS.CreateOrUpdateStream(ctx, events.GenerationsStream())
		return err
	}); err != nil {
		return nil // ctx done
	}
	cons, err := w.consumer(ctx)
	if err != nil {
		return nil // ctx done
	}
	w.Log.Info("inference worker consuming", "consumer", events.ConsumerInference, "concurrency", w.Concurrency)

	// Answers run on their own context: cancelling it (shutdown) stops them all.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sem := make(chan struct{}, w.Concurrency)
	var wg sync.WaitGroup
	defer func() {
		cancelWork()
		wg.Wait()
	}()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		fetchCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fetchCtx))
		cancel()
		if err != nil {
			<-sem
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrConsumerDeleted),
				errors.Is(err, jetstream.ErrStreamNotFound):
				w.Log.Warn("consumer gone, creating it again", "err", err)
				if cons, err = w.consumer(ctx); err != nil {
					return nil
				}
			default:
				w.Log.Warn("fetch event", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.handle(workCtx, msg)
		}()
	}
}

func (w *Worker) consumer(ctx context.Context) (jetstream.Consumer, error) {
	maxAck := w.MaxAckPending
	if maxAck <= 0 {
		maxAck = 256
	}
	var cons jetstream.Consumer
	err := w.retrySetup(ctx, "create consumer "+events.ConsumerInference, func(ctx context.Context) error {
		var err error
		cons, err = w.JS.CreateOrUpdateConsumer(ctx, events.StreamChatEvents, jetstream.ConsumerConfig{
			Durable:       events.ConsumerInference,
			FilterSubject: events.SubjectMessageCreated,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxDeliver:    maxDeliver,
			MaxAckPending: maxAck,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		return err
	})
	return cons, err
}

// retrySetup retries fn (NATS not up yet, chat's stream not created yet) until it
// works or ctx is done, logging once in a while.
func (w *Worker) retrySetup(ctx context.Context, what string, fn func(context.Context) error) error {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 || attempt%10 == 0 {
			w.Log.Warn("waiting to "+what, "err", err, "attempt", attempt)
		}
		sleep(ctx, delay)
		delay = min(delay*2, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// nakDelay spaces redeliveries of an event whose handling failed for a transient
// reason (chat or NATS unavailable).
func nakDelay(delivered uint64) time.Duration {
	switch delivered {
	case 0, 1:
		return 2 * time.Second
	case 2:
		return 5 * time.Second
	case 3:
		return 15 * time.Second
	}
	return 30 * time.Second
}

// job is one event being handled.
type job struct {
	w         *Worker
	msg       jetstream.Msg
	log       *slog.Logger
	messageID string
	delivered uint64
}

func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	j := &job{w: w, msg: msg, log: w.Log}
	if md, err := msg.Metadata(); err == nil {
		j.delivered = md.NumDelivered
	}
	var ev events.Event
	var mc events.MessageCreated
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		j.log.Error("undecodable event, dropping it", "err", err)
		_ = msg.Term()
		return
	}
	if err := json.Unmarshal(ev.Data, &mc); err != nil || mc.AssistantMessageID == "" {
		j.log.Error("undecodable message.created event, dropping it", "event_id", ev.ID, "err", err)
		_ = msg.Term()
		return
	}
	j.messageID = mc.AssistantMessageID
	j.log = w.Log.With("event_id", ev.ID, "request_id", ev.ID, "message_id", mc.AssistantMessageID,
		"chat_id", mc.ChatID, "delivery", j.delivered)
	ctx = events.WithRequestID(ctx, ev.ID)
	j.run(ctx)
}

func (j *job) rpcCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, j.w.RPCTimeout)
}

func (j *job) run(ctx context.Context) {
	w := j.w
	genCtx, cancelGen := context.WithCancelCause(ctx)
	defer cancelGen(nil)
	var userCancelled atomic.Bool
	sub, err := w.NC.Subscribe(events.SubjectCancel(j.messageID), func(*nats.Msg) {
		userCancelled.Store(true)
		cancelGen(errUserCancel)
	})
	if err != nil {
		j.retryLater(ctx, "subscribe to cancel", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()

	stopBeat := j.heartbeat()
	defer stopBeat()

	rctx, cancel := j.rpcCtx(ctx)
	_, err = events.Request[events.StartMessageRequest, events.MessageReply](rctx, w.NC, events.SubjectMessageStart,
		events.StartMessageRequest{MessageID: j.messageID, Attempt: int(j.delivered)})
	cancel()
	if err != nil {
		j.chatFailed(ctx, "start message", err)
		return
	}
	rctx, cancel = j.rpcCtx(ctx)
	conv, err := events.Request[events.ConversationRequest, events.ConversationReply](rctx, w.NC, events.SubjectConversationGet,
		events.ConversationRequest{MessageID: j.messageID})
	cancel()
	if err != nil {
		j.chatFailed(ctx, "get conversation", err)
		return
	}

	pub := newPublisher(w.JS, j.messageID, w.Coalesce, j.log)
	bctx, cancel := j.rpcCtx(ctx)
	err = pub.begin(bctx)
	cancel()
	if err != nil {
		j.retryLater(ctx, "begin generation", err)
		return
	}

	out := w.Answerer.Answer(genCtx, app.Job{MessageID: j.messageID, Conversation: conv}, pub)
	if out.Status == events.StatusCancelled && !userCancelled.Load() {
		// Shutting down: let another worker write this answer from the start.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		pub.drain(dctx)
		cancel()
		j.log.Info("shutting down, handing the answer back")
		_ = j.msg.Nak()
		return
	}

	// From here on, finish even if a shutdown starts: the answer is written.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*j.w.RPCTimeout)
	defer cancel()
	stored, err := j.complete(fctx, events.CompleteMessageRequest{
		MessageID: j.messageID, Status: out.Status, Content: out.Content, Model: out.Model, Error: out.Err, Usage: out.Usage,
	})
	if err != nil {
		var e *events.Error
		if errors.As(err, &e) && e.Code == events.CodeNotFound {
			j.log.Info("chat deleted while answering")
			pub.drain(fctx)
			j.ack(fctx)
			return
		}
		// Chat must store the answer; leave the event for a redelivery.
		j.log.Warn("complete message failed, will retry", "err", err)
		pub.drain(fctx)
		_ = j.msg.NakWithDelay(nakDelay(j.delivered))
		return
	}
	if err := pub.finish(fctx, terminalEvent(stored)); err != nil {
		j.log.Warn("publish terminal event", "err", err)
	}
	j.log.Info("answer finished", "status", stored.Status, "model", out.Model, "attempts", out.Attempts,
		"chars", len(out.Content))
	if out.Status == events.StatusFailed {
		// A provider failure is stored; a redelivery would not do better.
		_ = j.msg.Term()
		return
	}
	j.ack(fctx)
}

func (j *job) ack(ctx context.Context) {
	if err := j.msg.DoubleAck(ctx); err != nil {
		j.log.Warn("ack event", "err", err)
	}
}

func (j *job) complete(ctx context.Context, req events.CompleteMessageRequest) (events.Message, error) {
	rctx, cancel := j.rpcCtx(ctx)
	defer cancel()
	rep, err := events.Request[events.CompleteMessageRequest, events.MessageReply](rctx, j.w.NC, events.SubjectMessageComplete, req)
	if err != nil {
		return events.Message{}, err
	}
	return rep.Message, nil
}

func terminalEvent(m events.Message) events.GenerationEvent {
	msg := m
	if m.Status == events.StatusFailed {
		e := m.Error
		if e == nil {
			e = events.Errorf(events.CodeProviderError, "The answer failed.")
		}
		return events.GenerationEvent{Type: events.GenError, Error: e, Message: &msg}
	}
	return events.GenerationEvent{Type: events.GenDone, Message: &msg}
}

// heartbeat tells JetStream the event is still being worked on until stopped.
func (j *job) heartbeat() func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(j.w.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := j.msg.InProgress(); err != nil {
					j.log.Warn("in-progress ack", "err", err)
				}
			}
		}
	}()
	return func() { close(done) }
}

// chatFailed handles an error from chat's start or conversation endpoints.
func (j *job) chatFailed(ctx context.Context, what string, err error) {
	var e *events.Error
	if errors.As(err, &e) {
		switch e.Code {
		case events.CodeNotRunning:
			j.log.Info("answer already finished, skipping")
			j.repairTerminal(ctx)
			j.ack(ctx)
			return
		case events.CodeNotFound:
			j.log.Info("message or chat no longer exists, skipping")
			j.ack(ctx)
			return
		}
	}
	j.retryLater(ctx, what, err)
}

// repairTerminal makes sure an already finished answer's generation subject ends with
// its terminal event (a worker may have died between storing it and publishing).
func (j *job) repairTerminal(ctx context.Context) {
	rctx, cancel := j.rpcCtx(ctx)
	defer cancel()
	last, _, ok, err := events.LastGenerationEvent(rctx, j.w.JS, j.messageID)
	if err != nil || (ok && (last.Type == events.GenDone || last.Type == events.GenError)) {
		return
	}
	// Completing a finished message changes nothing and returns it as stored.
	stored, err := j.complete(rctx, events.CompleteMessageRequest{MessageID: j.messageID, Status: events.StatusFailed,
		Error: events.Errorf(events.CodeGenerationAbandoned, "The answer was interrupted. Please try again.")})
	if err != nil || !events.Terminal(stored.Status) {
		return
	}
	if _, err := events.PublishGenerationEvent(rctx, j.w.JS, j.messageID, terminalEvent(stored)); err != nil {
		j.log.Warn("publish terminal event", "err", err)
	}
}

// retryLater leaves the event for a later delivery; on the last delivery it stores the
// answer as failed instead, so it never stays pending.
func (j *job) retryLater(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		_ = j.msg.Nak() // shutting down
		return
	}
	if j.delivered < maxDeliver {
		j.log.Warn(what+" failed, will retry", "err", err)
		_ = j.msg.NakWithDelay(nakDelay(j.delivered))
		return
	}
	j.log.Error(what+" failed on the last delivery, failing the answer", "err", err)
	stored, cerr := j.complete(ctx, events.CompleteMessageRequest{MessageID: j.messageID, Status: events.StatusFailed,
		Error: events.Errorf(events.CodeGenerationAbandoned, "The answer could not be written because a service was unavailable. Please try again.")})
	if cerr != nil {
		j.log.Error("could not store the failed answer", "err", cerr)
		_ = j.msg.Nak()
		return
	}
	if _, perr := events.PublishGenerationEvent(ctx, j.w.JS, j.messageID, terminalEvent(stored)); perr != nil {
		j.log.Warn("publish terminal event", "err", perr)
	}
	_ = j.msg.Term()
}
