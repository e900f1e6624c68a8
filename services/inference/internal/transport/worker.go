// Package transport connects the inference use cases to NATS: the durable JetStream
// consumer that writes answers, the generation-event publisher and the models
// endpoint.
package transport

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
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
	// AckWait is the consumer's ack wait: a worker silent for this long (dead) loses
	// the event to another worker.
	AckWait time.Duration
	// MaxDeliver is how many counted deliveries an event gets; the last one stores the
	// answer failed rather than leave it for a redelivery. Deliveries handed back on
	// purpose (see jobState) are not counted.
	MaxDeliver int
	// Limits caps answers per model (nil: no cap); ModelBusyDelay is how long a job for
	// a model at its cap waits in JetStream before it is tried again.
	Limits         *ModelLimits
	ModelBusyDelay time.Duration
	// Metrics is required.
	Metrics *Metrics
	// StreamReplicas is the replica count of GENERATIONS if this worker creates it.
	StreamReplicas int
	// Ready is called once the consumer is set up.
	Ready func()

	stream jetstream.Stream
	// genStored is when (unix nanoseconds) a generation event was last stored.
	genStored atomic.Int64
	// cancels are the answers being written, by message id, for the worker's one
	// subscription to cancel signals (no subscription per answer).
	cancels cancelRegistry
}

// maxFetch bounds how many events one pull asks for: a pull asks for as many as
// there are free slots, so that one pull request (and one reply subscription) serves
// several events instead of one each.
const maxFetch = 64

// genFresh is how recently a generation event must have been stored for a first
// delivery to skip reading its (empty) generation subject.
const genFresh = 10 * time.Second

// generationsWorking says GENERATIONS stored an event lately: a first delivery can
// then trust that its answer's subject is empty instead of reading it. When none was
// stored lately (a quiet worker, or the stream gone) the subject is read as before, so
// that no provider call is made while the events could not be stored.
func (w *Worker) generationsWorking() bool {
	return time.Since(time.Unix(0, w.genStored.Load())) < genFresh
}

// freeDeliveries is how many deliveries beyond MaxDeliver the JetStream consumer
// allows, for the hand-backs that are not counted. The chat service's reaper
// (CHAT_GENERATION_TIMEOUT) bounds an answer's life anyway.
const freeDeliveries = 1000

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
	if w.AckWait <= 0 {
		w.AckWait = 30 * time.Second
	}
	if w.MaxDeliver <= 0 {
		w.MaxDeliver = 5
	}
	if w.ModelBusyDelay <= 0 {
		w.ModelBusyDelay = time.Second
	}
	if err := w.retrySetup(ctx, "create stream "+events.StreamGenerations, func(ctx context.Context) error {
		var err error
		w.stream, err = w.JS.CreateOrUpdateStream(ctx, events.GenerationsStream(w.StreamReplicas))
		return err
	}); err != nil {
		return nil // ctx done
	}
	cons, err := w.consumer(ctx)
	if err != nil {
		return nil // ctx done
	}
	w.Log.Info("inference worker consuming", "consumer", events.ConsumerInference, "concurrency", w.Concurrency,
		"max_deliver", w.MaxDeliver, "ack_wait", w.AckWait.String())
	if w.Ready != nil {
		w.Ready()
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	bg.Go(func() { w.pollQueue(ctx, cons) })
	cancelSub, err := w.NC.QueueSubscribe(events.SubjectCancel("*"), events.ConsumerInference, func(m *nats.Msg) {
		bg.Go(func() { w.cancelParked(ctx, strings.TrimPrefix(m.Subject, events.SubjectCancel(""))) })
	})
	if err != nil {
		return fmt.Errorf("subscribe to cancels: %w", err)
	}
	defer func() { _ = cancelSub.Unsubscribe() }()
	// Every worker hears every cancel (they are rare) and stops the answer it writes.
	heldSub, err := w.NC.Subscribe(events.SubjectCancel("*"), func(m *nats.Msg) {
		w.cancels.fire(strings.TrimPrefix(m.Subject, events.SubjectCancel("")))
	})
	if err != nil {
		return fmt.Errorf("subscribe to cancels: %w", err)
	}
	defer func() { _ = heldSub.Unsubscribe() }()

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
		// Ask for as many events as there are free slots.
		slots := 1
	claim:
		for slots < maxFetch {
			select {
			case sem <- struct{}{}:
				slots++
			default:
				break claim
			}
		}
		fetchCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := cons.Fetch(slots, jetstream.FetchContext(fetchCtx))
		if err == nil {
			for msg := range batch.Messages() {
				if ctx.Err() != nil {
					_ = msg.Nak() // stopping: another worker takes it at once
					continue
				}
				slots--
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					w.Metrics.begin()
					defer w.Metrics.end()
					w.handle(workCtx, msg)
				}()
			}
			err = batch.Error()
		}
		cancel()
		for range slots {
			<-sem
		}
		if err == nil {
			continue
		}
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
			AckWait:       w.AckWait,
			MaxDeliver:    w.MaxDeliver + freeDeliveries,
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

// pollQueue keeps the queue-depth gauges current.
func (w *Worker) pollQueue(ctx context.Context, cons jetstream.Consumer) {
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			w.Metrics.queueDepth.Set(float64(info.NumPending))
			w.Metrics.ackPending.Set(float64(info.NumAckPending))
		}
		sleep(ctx, 5*time.Second)
		if ctx.Err() != nil {
			return
		}
	}
}

// job is one event being handled.
type job struct {
	w         *Worker
	msg       jetstream.Msg
	log       *slog.Logger
	messageID string
	model     string
	delivered uint64
	// counted is delivered minus the deliveries handed back on purpose.
	counted int
	last    lastEvent
	// attemptID names this attempt once chat started it ("" before).
	attemptID string
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
	j.messageID, j.model = mc.AssistantMessageID, mc.Model
	// The request that asked for the answer names the whole job (an event written
	// without one, e.g. by an older chat, is named by its own id).
	reqID := cmp.Or(mc.RequestID, ev.ID)
	j.log = w.Log.With("event_id", ev.ID, "request_id", reqID, "message_id", mc.AssistantMessageID,
		"chat_id", mc.ChatID, "delivery", j.delivered)
	ctx = events.WithRequestID(ctx, reqID)
	j.run(ctx)
}

func (j *job) rpcCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, j.w.RPCTimeout)
}

// lastDelivery says this is the event's last counted delivery.
func (j *job) lastDelivery() bool { return j.counted >= j.w.MaxDeliver }

func (j *job) run(ctx context.Context) {
	w := j.w
	genCtx, cancelGen := context.WithCancelCause(ctx)
	defer cancelGen(nil)
	watch := &cancelWatch{cancel: cancelGen}
	w.cancels.add(j.messageID, watch)
	defer w.cancels.remove(j.messageID, watch)
	userCancelled := &watch.fired
	var err error

	// What earlier deliveries left on the generation subject says how many of them
	// count, and how far the retry budget went. A first delivery has none to read.
	j.counted = int(j.delivered)
	firstDelivery := j.delivered <= 1 && w.generationsWorking()
	if !firstDelivery {
		rctx, cancel := j.rpcCtx(ctx)
		j.last, err = readLast(rctx, w.stream, j.messageID)
		cancel()
		if err != nil {
			j.retryLater(ctx, "read generation subject", err)
			return
		}
		if j.last.terminal() {
			j.log.Info("answer already finished, skipping")
			j.ack()
			return
		}
		if j.last.state != nil {
			j.counted = max(int(j.delivered)-j.last.state.Free, 1)
		}
	}
	j.log = j.log.With("counted_delivery", j.counted)

	// A model at its limit: wait in JetStream, not in a slot.
	model := j.model
	if e, _, found := w.Answerer.Catalog.Resolve(model); found {
		model = e.Model.ID
	}
	release, ok := w.Limits.TryAcquire(model)
	if !ok {
		d := jitter(w.ModelBusyDelay)
		j.log.Debug("model at its concurrency limit, handing the event back", "model", model, "wait", d.String())
		pub := newPublisher(w.JS, w.stream, j.messageID, w.Coalesce, j.log, j.last)
		j.handBack(ctx, pub, events.WaitQueued, d)
		return
	}
	defer release()

	stopBeat := j.heartbeat()
	defer stopBeat()

	attemptID := uuid.Must(uuid.NewV7()).String()
	rctx, cancel := j.rpcCtx(ctx)
	started, err := events.Request[events.StartMessageRequest, events.StartMessageReply](rctx, w.NC, events.SubjectMessageStart,
		events.StartMessageRequest{MessageID: j.messageID, Attempt: j.counted, AttemptID: attemptID, WithConversation: true})
	cancel()
	if err != nil {
		j.chatFailed(ctx, "start message", err)
		return
	}
	j.attemptID = attemptID
	conv := started.Conversation
	if conv == nil {
		// A chat service that does not send it with the start.
		rctx, cancel = j.rpcCtx(ctx)
		c, err := events.Request[events.ConversationRequest, events.ConversationReply](rctx, w.NC, events.SubjectConversationGet,
			events.ConversationRequest{MessageID: j.messageID})
		cancel()
		if err != nil {
			j.chatFailed(ctx, "get conversation", err)
			return
		}
		conv = &c
	}

	pub := newPublisher(w.JS, w.stream, j.messageID, w.Coalesce, j.log, j.last)
	pub.stored = &w.genStored
	if !firstDelivery || !started.FirstStart {
		// An earlier attempt may have published: find the sequence, reset its text.
		bctx, cancel := j.rpcCtx(ctx)
		err = pub.begin(bctx)
		cancel()
		if errors.Is(err, errAlreadyTerminal) {
			j.log.Info("answer finished meanwhile, skipping")
			j.ack()
			return
		}
		if err != nil {
			j.retryLater(ctx, "begin generation", err)
			return
		}
	}
	// Otherwise this is the answer's first start on its first delivery: no worker has
	// published for it (a start always comes before the first event, a hand-back
	// makes a later delivery), so the subject is empty and nothing needs reading.

	st := pub.state
	out := w.Answerer.Answer(genCtx, app.Job{MessageID: j.messageID, Conversation: *conv,
		Attempts: st.Attempts, RetrySince: st.RetrySince}, pub)
	if out.Status == events.StatusCancelled && !userCancelled.Load() {
		// Shutting down: let another worker write this answer from the start.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		pub.drain(dctx)
		cancel()
		j.log.Info("shutting down, handing the answer back")
		_ = j.msg.Nak()
		return
	}
	if out.Park != nil {
		pub.Attempt(ctx, out.Attempts, out.RetrySince)
		j.handBack(ctx, pub, out.Park.Reason, time.Until(out.Park.RetryAt))
		return
	}

	// From here on, finish even if a shutdown starts: the answer is written.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*j.w.RPCTimeout)
	defer cancel()
	// ... unless NATS is gone at shutdown: nothing could be stored then.
	stopAfter := context.AfterFunc(ctx, func() {
		if !w.NC.IsConnected() {
			cancel()
		}
	})
	defer stopAfter()
	req := events.CompleteMessageRequest{
		MessageID: j.messageID, Status: out.Status, Content: out.Content, Model: out.Model, Error: out.Err, Usage: out.Usage,
		AttemptID: j.attemptID, ChatID: conv.ChatID,
	}
	stored, err := j.completeRetrying(fctx, ctx, req)
	if err != nil {
		var e *events.Error
		if errors.As(err, &e) && e.Code == events.CodeNotFound {
			j.log.Info("chat deleted while answering")
			pub.drain(fctx)
			j.ack()
			return
		}
		if staleAttempt(err) {
			j.stale(pub)
			return
		}
		// Chat must store the answer; leave the event for a redelivery.
		pub.drain(fctx)
		if j.lastDelivery() {
			j.log.Error("storing the answer failed on the last delivery; leaving it to a redelivery anyway", "err", err)
		} else {
			j.log.Warn("storing the answer failed, will retry", "err", err)
		}
		_ = j.msg.NakWithDelay(nakDelay(uint64(j.counted)))
		return
	}
	// Counted once stored, before clients hear of it.
	w.Metrics.answers.WithLabelValues(stored.Status).Inc()
	if err := pub.finish(fctx, terminalEvent(stored)); err != nil {
		j.log.Warn("publish terminal event", "err", err)
	}
	// A routine completion is a debug line (one per chat turn); anything else stays
	// visible at info.
	level := slog.LevelInfo
	if stored.Status == events.StatusComplete && out.Attempts <= 1 {
		level = slog.LevelDebug
	}
	j.log.Log(ctx, level, "answer finished", "status", stored.Status, "model", out.Model, "attempts", out.Attempts,
		"chars", len(out.Content))
	if out.Status == events.StatusFailed {
		// A provider failure is stored; a redelivery would not do better.
		_ = j.msg.Term()
		return
	}
	j.ack()
}

// staleAttempt says chat refused a completion because another attempt started the
// answer since this one did.
func staleAttempt(err error) bool {
	var e *events.Error
	return errors.As(err, &e) && e.Code == events.CodeConflict
}

// stale ends an attempt whose answer another attempt took over (this worker was
// presumed dead: silent for longer than the ack wait, or NATS was away that long). The
// newer attempt owns the answer, its events and the JetStream delivery: this one
// publishes nothing more and neither acks nor naks (the delivery it held is no longer
// its own).
func (j *job) stale(pub *genPublisher) {
	if pub != nil {
		pub.cancel()
	}
	j.w.Metrics.answers.WithLabelValues("superseded").Inc()
	j.log.Warn("another attempt took this answer over; dropping this attempt's result", "attempt_id", j.attemptID)
}

// handBack publishes a `waiting` event marked parked (a free delivery) and hands the
// event back to JetStream for d, freeing the slot. Nothing terminal is stored; the
// redelivery resumes the answer (with `reset` if text had streamed).
func (j *job) handBack(ctx context.Context, pub *genPublisher, reason string, d time.Duration) {
	d = max(d, 100*time.Millisecond)
	pctx, cancel := j.rpcCtx(context.WithoutCancel(ctx))
	defer cancel()
	if err := pub.handBack(pctx, reason, time.Now().Add(d)); err != nil {
		if errors.Is(err, errAlreadyTerminal) {
			j.log.Info("answer finished meanwhile, skipping")
			j.ack()
			return
		}
		// Without the record the delivery counts; it is still better than holding a slot.
		j.log.Warn("publish waiting event", "err", err)
	}
	j.w.Metrics.handBacks.WithLabelValues(reason).Inc()
	if reason != events.WaitQueued {
		j.log.Info("answer waits in the queue", "reason", reason, "wait", d.Round(time.Millisecond).String())
	}
	if err := j.msg.NakWithDelay(d); err != nil {
		j.log.Warn("nak event", "err", err)
	}
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// ack acknowledges the event without waiting for the server to confirm it: an ack
// lost on the way only brings a redelivery after the ack wait, which finds the
// answer finished on its generation subject and acks it then.
func (j *job) ack() {
	if err := j.msg.Ack(); err != nil {
		j.log.Warn("ack event", "err", err)
	}
}

func (j *job) complete(ctx context.Context, req events.CompleteMessageRequest) (events.Message, error) {
	return complete(ctx, j.w.NC, j.w.RPCTimeout, req)
}

func complete(ctx context.Context, nc *nats.Conn, timeout time.Duration, req events.CompleteMessageRequest) (events.Message, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := events.Request[events.CompleteMessageRequest, events.MessageReply](rctx, nc, events.SubjectMessageComplete, req)
	if err != nil {
		return events.Message{}, err
	}
	return rep.Message, nil
}

// completeRetrying stores the answer, retrying a few times over a few seconds when
// chat is unavailable (a restart) before giving up on this delivery; it stops retrying
// when runCtx is done (shutdown).
func (j *job) completeRetrying(ctx, runCtx context.Context, req events.CompleteMessageRequest) (events.Message, error) {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		m, err := j.complete(ctx, req)
		var e *events.Error
		if err == nil || attempt == 4 || ctx.Err() != nil || runCtx.Err() != nil ||
			(errors.As(err, &e) && e.Code != events.CodeUnavailable && e.Code != events.CodeTimeout) {
			return m, err
		}
		j.log.Warn("store answer failed, retrying", "err", err, "attempt", attempt)
		sleep(ctx, delay)
		delay *= 2
	}
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

// heartbeat tells JetStream the event is still being worked on until stopped (a
// timer that re-arms itself: no goroutine per answer).
func (j *job) heartbeat() func() {
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(j.w.Heartbeat, func() {
		if err := j.msg.InProgress(); err != nil {
			j.log.Warn("in-progress ack", "err", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(j.w.Heartbeat)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// cancelRegistry maps the message ids of the answers being written to what stops them.
type cancelRegistry struct {
	mu sync.Mutex
	m  map[string]map[*cancelWatch]struct{}
}

// cancelWatch stops one attempt at an answer; fired says a cancel was heard.
type cancelWatch struct {
	cancel context.CancelCauseFunc
	fired  atomic.Bool
}

func (r *cancelRegistry) add(messageID string, c *cancelWatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]map[*cancelWatch]struct{}{}
	}
	set := r.m[messageID]
	if set == nil {
		set = map[*cancelWatch]struct{}{}
		r.m[messageID] = set
	}
	set[c] = struct{}{}
}

func (r *cancelRegistry) remove(messageID string, c *cancelWatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m[messageID], c)
	if len(r.m[messageID]) == 0 {
		delete(r.m, messageID)
	}
}

// fire stops every attempt at messageID this worker is writing.
func (r *cancelRegistry) fire(messageID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.m[messageID] {
		c.fired.Store(true)
		c.cancel(errUserCancel)
	}
}

// chatFailed handles an error from chat's start or conversation endpoints.
func (j *job) chatFailed(ctx context.Context, what string, err error) {
	var e *events.Error
	if errors.As(err, &e) {
		switch e.Code {
		case events.CodeNotRunning:
			j.log.Info("answer already finished, skipping")
			j.repairTerminal(ctx)
			j.ack()
			return
		case events.CodeNotFound:
			j.log.Info("message or chat no longer exists, skipping")
			j.ack()
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
	last, err := readLast(rctx, j.w.stream, j.messageID)
	if err != nil || last.terminal() {
		return
	}
	// Completing a finished message changes nothing and returns it as stored.
	stored, err := j.complete(rctx, events.CompleteMessageRequest{MessageID: j.messageID, Status: events.StatusFailed,
		Error: events.Errorf(events.CodeGenerationAbandoned, "The answer was interrupted. Please try again.")})
	if err != nil || !events.Terminal(stored.Status) {
		return
	}
	if _, err := publishCAS(rctx, j.w.JS, j.w.stream, j.messageID, terminalEvent(stored), jobState{}); err != nil &&
		!errors.Is(err, errAlreadyTerminal) {
		j.log.Warn("publish terminal event", "err", err)
	}
}

// retryLater leaves the event for a later delivery; on the last counted delivery it
// stores the answer as failed instead, so it never stays pending.
func (j *job) retryLater(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		_ = j.msg.Nak() // shutting down
		return
	}
	if !j.lastDelivery() {
		j.log.Warn(what+" failed, will retry", "err", err)
		_ = j.msg.NakWithDelay(nakDelay(uint64(j.counted)))
		return
	}
	j.log.Error(what+" failed on the last delivery, failing the answer", "err", err, "code", events.CodeGenerationAbandoned)
	stored, cerr := j.complete(ctx, events.CompleteMessageRequest{MessageID: j.messageID, Status: events.StatusFailed,
		Error: events.Errorf(events.CodeGenerationAbandoned,
			"The answer could not be written: a service it needs was unavailable %d times in a row. Please try again.", j.counted),
		AttemptID: j.attemptID})
	if staleAttempt(cerr) {
		j.stale(nil)
		return
	}
	if cerr != nil {
		j.log.Error("could not store the failed answer", "err", cerr)
		_ = j.msg.NakWithDelay(nakDelay(uint64(j.counted)))
		return
	}
	pctx, cancel := j.rpcCtx(ctx)
	defer cancel()
	if _, perr := publishCAS(pctx, j.w.JS, j.w.stream, j.messageID, terminalEvent(stored), jobState{}); perr != nil &&
		!errors.Is(perr, errAlreadyTerminal) {
		j.log.Warn("publish terminal event", "err", perr)
	}
	j.w.Metrics.answers.WithLabelValues(stored.Status).Inc()
	_ = j.msg.Term()
}

// cancelParked handles a user's cancel of an answer that no worker holds because it
// was handed back to JetStream to wait (its last generation event is a parked
// `waiting`): it stores the answer cancelled and publishes `done`. A worker holding an
// answer hears the cancel on its own subscription; chat handles pending ones itself.
func (w *Worker) cancelParked(ctx context.Context, messageID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*w.RPCTimeout)
	defer cancel()
	log := w.Log.With("message_id", messageID)
	last, err := readLast(ctx, w.stream, messageID)
	if err != nil || !last.ok || last.state == nil || !last.state.Parked {
		return
	}
	stored, err := complete(ctx, w.NC, w.RPCTimeout, events.CompleteMessageRequest{MessageID: messageID, Status: events.StatusCancelled})
	if err != nil {
		log.Warn("cancel a waiting answer", "err", err)
		return
	}
	if !events.Terminal(stored.Status) {
		return
	}
	st := *last.state
	st.Parked = false
	if _, err := publishCAS(ctx, w.JS, w.stream, messageID, terminalEvent(stored), st); err != nil && !errors.Is(err, errAlreadyTerminal) {
		log.Warn("publish terminal event", "err", err)
		return
	}
	log.Info("waiting answer cancelled", "status", stored.Status)
}
