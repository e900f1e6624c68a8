package inference_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testlog"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken/authtokentest"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/inference"
)

// env is NATS, a real chat service on its own database, the fake HF router and one
// inference worker, talked to over NATS like the gateway does.
type env struct {
	t  *testing.T
	nc *nats.Conn
	// tokens serves the token keys chat verifies forwarded user tokens with.
	tokens *authtokentest.Issuer
	js     jetstream.JetStream
	ns     interface{ ClientURL() string }
	fake   *fakehf.Server
	cfg    inference.Config
	log    *slog.Logger
	logs   *testlog.Buffer
	// stopWorker stops the first inference worker; workers lists every worker started.
	stopWorker func()
	workers    []*workerHandle
	chatCfg    chat.Config
	stopChat   func()
}

type logWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// teeHandler sends records to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.a.Enabled(ctx, r.Level) {
		_ = h.a.Handle(ctx, r.Clone())
	}
	if h.b.Enabled(ctx, r.Level) {
		_ = h.b.Handle(ctx, r.Clone())
	}
	return nil
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}

func newLogger(t *testing.T) (*slog.Logger, *testlog.Buffer) {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	buf := &testlog.Buffer{}
	return slog.New(teeHandler{
		slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}),
		slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}),
	}), buf
}

// start runs fn (a service's Run) until the test ends or stop is called, and checks
// it stopped cleanly.
func start(t *testing.T, name string, fn func(ctx context.Context) error) (stop func()) {
	return startRun(t, name, true, fn)
}

func startRun(t *testing.T, name string, mustBeClean bool, fn func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && mustBeClean {
					t.Errorf("%s.Run returned %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s.Run did not stop", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// envOptions shape a test environment.
type envOptions struct {
	hf   bool
	fake fakehf.Options
	// cfg adjusts the inference configuration.
	cfg func(*inference.Config)
	// firstWorkerURL, when set, is the NATS URL of the first worker (a proxy).
	firstWorkerURL func(natsURL string) string
}

func newEnv(t *testing.T, withHF bool, fakeOpts fakehf.Options) *env {
	t.Helper()
	return newEnvWith(t, envOptions{hf: withHF, fake: fakeOpts})
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	d := testdb.New(t)
	ns := testnats.New(t)
	e := &env{t: t, ns: ns}
	cfg := inference.Config{
		NATSURL: ns.ClientURL(), RetryMaxWait: 20 * time.Second, RetryBase: 50 * time.Millisecond,
		ProviderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second, Concurrency: 4, DemoWordDelay: time.Millisecond,
		ShutdownTimeout: 2 * time.Second,
	}
	if o.hf {
		e.fake = fakehf.New(o.fake)
		t.Cleanup(e.fake.Close)
		cfg.HFToken, cfg.HFBaseURL = e.fake.Token(), e.fake.BaseURL()
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	e.cfg = cfg
	e.log, e.logs = newLogger(t)
	// Inference first: chat asks it for the models.
	first := cfg
	if o.firstWorkerURL != nil {
		first.NATSURL = o.firstWorkerURL(ns.ClientURL())
		e.stopWorker = e.startWorkerWith(first, false).stop
	} else {
		e.stopWorker = e.startWorkerWith(first, true).stop
	}
	e.chatCfg = chat.Config{NATSURL: ns.ClientURL(),
		DB: db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name}}
	e.startChat()

	nc := testnats.Connect(t, ns.ClientURL())
	e.nc = nc
	e.tokens = authtokentest.Serve(t, nc) // stands in for auth's token keys
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	e.js = js
	e.waitForChat()
	return e
}

// startChat starts (or restarts) the chat service.
func (e *env) startChat() {
	e.stopChat = start(e.t, "chat", func(ctx context.Context) error { return chat.Run(ctx, e.chatCfg, chat.Deps{Logger: e.log}) })
}

func (e *env) waitForChat() {
	e.t.Helper()
	// Generous: chat's migrations may wait for a lock other test runs hold.
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, err := request[events.ChatRef, events.ChatReply](e, events.SubjectChatLatest, events.ChatRef{UserID: newID()})
		var ee *events.Error
		if errors.As(err, &ee) && ee.Code == events.CodeNoChats {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("chat did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// workerHandle is one running worker and its metrics.
type workerHandle struct {
	stop func()
	reg  *prometheus.Registry
}

// startWorker starts one more inference worker.
func (e *env) startWorker() (stop func()) {
	return e.startWorkerWith(e.cfg, true).stop
}

func (e *env) startWorkerWith(cfg inference.Config, mustBeClean bool) *workerHandle {
	h := &workerHandle{reg: prometheus.NewRegistry()}
	h.stop = startRun(e.t, "inference", mustBeClean, func(ctx context.Context) error {
		return inference.Run(ctx, cfg, inference.Deps{Logger: e.log, Registry: h.reg})
	})
	e.workers = append(e.workers, h)
	return h
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func request[Req, Rep any](e *env, subject string, req Req) (Rep, error) {
	// chat acts only as the user of the forwarded token: forward one for the payload's user.
	ctx, cancel := context.WithTimeout(e.tokens.ContextFor(context.Background(), req), 10*time.Second)
	defer cancel()
	return events.Request[Req, Rep](ctx, e.nc, subject, req)
}

// must(f())(t) returns f's value and fails the test on f's error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func (e *env) newChat(userID string) events.Chat {
	e.t.Helper()
	return must(request[events.CreateChatRequest, events.ChatReply](e, events.SubjectChatCreate,
		events.CreateChatRequest{UserID: userID}))(e.t).Chat
}

func (e *env) send(userID, chatID, content string) events.SendMessageReply {
	e.t.Helper()
	return must(request[events.SendMessageRequest, events.SendMessageReply](e, events.SubjectMessageSend,
		events.SendMessageRequest{UserID: userID, ChatID: chatID, Content: content}))(e.t)
}

// generation reads a message's generation events until the terminal one; onDelta
// sees each delta as it comes.
func (e *env) generation(messageID string, onDelta func(events.GenerationEvent)) []events.GenerationEvent {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := e.js.OrderedConsumer(ctx, events.StreamGenerations, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectGeneration(messageID)},
	})
	if err != nil {
		e.t.Fatalf("ordered consumer: %v", err)
	}
	var out []events.GenerationEvent
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			e.t.Fatalf("read generation events (got %+v): %v", out, err)
		}
		var ev events.GenerationEvent
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			e.t.Fatalf("decode generation event: %v", err)
		}
		out = append(out, ev)
		if ev.Type == events.GenDelta && onDelta != nil {
			onDelta(ev)
		}
		if ev.Type == events.GenDone || ev.Type == events.GenError {
			return out
		}
	}
}

// text is the answer as a client rebuilds it: deltas, dropping text before a reset.
func text(evs []events.GenerationEvent) string {
	var sb strings.Builder
	for _, ev := range evs {
		switch ev.Type {
		case events.GenDelta:
			sb.WriteString(ev.Text)
		case events.GenReset:
			sb.Reset()
		}
	}
	return sb.String()
}

func types(evs []events.GenerationEvent) []string {
	var out []string
	for _, ev := range evs {
		if len(out) > 0 && out[len(out)-1] == ev.Type && ev.Type == events.GenDelta {
			continue
		}
		out = append(out, ev.Type)
	}
	return out
}

func checkSeqs(t *testing.T, evs []events.GenerationEvent) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d (%+v)", i, ev.Seq, i+1, evs)
		}
	}
}

func (e *env) stored(userID, messageID string) events.Message {
	e.t.Helper()
	return must(request[events.MessageRef, events.MessageReply](e, events.SubjectMessageGet,
		events.MessageRef{UserID: userID, MessageID: messageID}))(e.t).Message
}

func TestAnswersThroughChat(t *testing.T) {
	e := newEnv(t, true, fakehf.Options{})
	models := must(request[events.Empty, events.ModelsReply](e, events.SubjectModelsList, events.Empty{}))(t).Models
	if len(models) == 0 || models[0].ID != inference.DefaultHFModel || !models[0].Default || models[0].Provider != events.ProviderHuggingFace {
		t.Fatalf("models = %+v", models)
	}

	alice, bob := newID(), newID()
	aliceChat, bobChat := e.newChat(alice), e.newChat(bob)

	t.Run("answer streams and is stored", func(t *testing.T) {
		sent := e.send(alice, aliceChat.ID, "first question")
		evs := e.generation(sent.AssistantMessage.ID, nil)
		checkSeqs(t, evs)
		want := "You said: first question (seen 1 messages)"
		if got := text(evs); got != want {
			t.Errorf("streamed %q, want %q", got, want)
		}
		last := evs[len(evs)-1]
		if last.Type != events.GenDone || last.Message == nil || last.Message.Status != events.StatusComplete ||
			last.Message.Content != want || last.Message.Model != inference.DefaultHFModel || last.Message.Usage == nil {
			t.Fatalf("terminal event = %+v", last)
		}
		if m := e.stored(alice, sent.AssistantMessage.ID); m.Status != events.StatusComplete || m.Content != want {
			t.Errorf("stored = %+v", m)
		}
	})

	t.Run("the model sees only its own chat", func(t *testing.T) {
		bobSent := e.send(bob, bobChat.ID, "bob's secret")
		e.generation(bobSent.AssistantMessage.ID, nil)
		sent := e.send(alice, aliceChat.ID, "second question")
		evs := e.generation(sent.AssistantMessage.ID, nil)
		if got, want := text(evs), "You said: second question (seen 3 messages)"; got != want {
			t.Errorf("streamed %q, want %q", got, want)
		}
		reqs := e.answerRequests()
		last := reqs[len(reqs)-1].Chat
		for _, m := range last.Messages {
			if strings.Contains(m.Content, "bob") {
				t.Errorf("alice's prompt holds bob's words: %+v", last.Messages)
			}
		}
	})

	t.Run("provider error fails the answer with its code", func(t *testing.T) {
		sent := e.send(alice, aliceChat.ID, "please fail [fakehf:401]")
		evs := e.generation(sent.AssistantMessage.ID, nil)
		checkSeqs(t, evs)
		last := evs[len(evs)-1]
		if last.Type != events.GenError || last.Error == nil || last.Error.Code != events.CodeProviderAuth ||
			!strings.Contains(last.Error.Message, "HF_API_TOKEN") || strings.Contains(last.Error.Message, e.fake.Token()) {
			t.Fatalf("terminal event = %+v", last)
		}
		m := e.stored(alice, sent.AssistantMessage.ID)
		if m.Status != events.StatusFailed || m.Error == nil || m.Error.Code != events.CodeProviderAuth {
			t.Errorf("stored = %+v", m)
		}
	})

	t.Run("the send's request id names the worker's log lines", func(t *testing.T) {
		// A failed answer is logged at info and warn (a routine success only at debug).
		req := events.SendMessageRequest{UserID: alice, ChatID: aliceChat.ID, Content: "trace me [fakehf:401]"}
		ctx, cancel := context.WithTimeout(events.WithRequestID(e.tokens.ContextFor(context.Background(), req), "req-trace-1"), 10*time.Second)
		defer cancel()
		sent := must(events.Request[events.SendMessageRequest, events.SendMessageReply](ctx, e.nc, events.SubjectMessageSend, req))(t)
		e.generation(sent.AssistantMessage.ID, nil)
		recs := e.logs.Records(map[string]string{"message_id": sent.AssistantMessage.ID})
		if len(recs) == 0 {
			t.Fatalf("the worker logged nothing for the answer:\n%s", e.logs.String())
		}
		for _, r := range recs {
			if r["request_id"] != "req-trace-1" {
				t.Errorf("log line for the answer with request_id %v, want req-trace-1: %v", r["request_id"], r)
			}
		}
	})

	t.Run("rate limited then answered", func(t *testing.T) {
		e.fake.Enqueue("", fakehf.RateLimited("1"))
		sent := e.send(alice, aliceChat.ID, "busy?")
		evs := e.generation(sent.AssistantMessage.ID, nil)
		checkSeqs(t, evs)
		got := types(evs)
		if len(got) != 3 || got[0] != events.GenWaiting || got[1] != events.GenDelta || got[2] != events.GenDone {
			t.Fatalf("event types = %v", got)
		}
		if evs[0].Reason != events.WaitRateLimited || evs[0].RetryAt == nil {
			t.Errorf("waiting event = %+v", evs[0])
		}
	})

	t.Run("dropped stream restarts with reset", func(t *testing.T) {
		e.fake.Enqueue("", fakehf.Drop(2))
		sent := e.send(alice, aliceChat.ID, "one two three four")
		evs := e.generation(sent.AssistantMessage.ID, nil)
		checkSeqs(t, evs)
		if !strings.Contains(strings.Join(types(evs), ","), events.GenReset) {
			t.Errorf("event types = %v, want a reset", types(evs))
		}
		if got := evs[len(evs)-1].Message.Content; !strings.HasPrefix(got, "You said: one two three four") || text(evs) != got {
			t.Errorf("content %q, streamed %q", got, text(evs))
		}
	})
}

func TestCancelStopsTheProvider(t *testing.T) {
	e := newEnv(t, true, fakehf.Options{TokenDelay: 100 * time.Millisecond})
	user := newID()
	c := e.newChat(user)
	sent := e.send(user, c.ID, strings.Repeat("word ", 100))
	var once sync.Once
	evs := e.generation(sent.AssistantMessage.ID, func(events.GenerationEvent) {
		once.Do(func() {
			_, err := request[events.MessageRef, events.MessageReply](e, events.SubjectMessageCancel,
				events.MessageRef{UserID: user, MessageID: sent.AssistantMessage.ID})
			if err != nil {
				t.Errorf("cancel: %v", err)
			}
		})
	})
	last := evs[len(evs)-1]
	if last.Type != events.GenDone || last.Message.Status != events.StatusCancelled {
		t.Fatalf("terminal event = %+v", last)
	}
	if got := last.Message.Content; got == "" || !strings.HasPrefix("You said: "+strings.Repeat("word ", 100), got) || got != text(evs) {
		t.Errorf("cancelled content %q, streamed %q", got, text(evs))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		reqs := e.answerRequests()
		if len(reqs) == 1 && reqs[0].Finished {
			if !reqs[0].Cancelled {
				t.Fatalf("the provider call was not cancelled")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider request never finished: %+v", reqs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDemoModelWithoutToken(t *testing.T) {
	e := newEnv(t, false, fakehf.Options{})
	models := must(request[events.Empty, events.ModelsReply](e, events.SubjectModelsList, events.Empty{}))(t).Models
	if len(models) != 1 || models[0].ID != "demo" || models[0].Provider != events.ProviderDemo || !models[0].Default {
		t.Fatalf("models = %+v", models)
	}
	user := newID()
	c := e.newChat(user)
	sent := e.send(user, c.ID, "is anybody there?")
	evs := e.generation(sent.AssistantMessage.ID, nil)
	checkSeqs(t, evs)
	last := evs[len(evs)-1]
	if last.Type != events.GenDone || last.Message.Status != events.StatusComplete {
		t.Fatalf("terminal event = %+v", last)
	}
	for _, want := range []string{"demo model", "is anybody there?", "HF_API_TOKEN", "OPENAI_BASE_URL"} {
		if !strings.Contains(last.Message.Content, want) {
			t.Errorf("demo answer %q lacks %q", last.Message.Content, want)
		}
	}
}

func TestShutdownHandsTheAnswerToAnotherWorker(t *testing.T) {
	e := newEnv(t, true, fakehf.Options{TokenDelay: 50 * time.Millisecond})
	user := newID()
	c := e.newChat(user)
	question := strings.Repeat("word ", 30)
	sent := e.send(user, c.ID, question)
	var once sync.Once
	evs := e.generation(sent.AssistantMessage.ID, func(events.GenerationEvent) {
		once.Do(func() {
			e.startWorker()
			go e.stopWorker()
		})
	})
	checkSeqs(t, evs)
	last := evs[len(evs)-1]
	want := "You said: " + question + "(seen 1 messages)"
	if last.Type != events.GenDone || last.Message.Status != events.StatusComplete || last.Message.Content != want {
		t.Fatalf("terminal event = %+v", last)
	}
	if got := text(evs); got != want {
		t.Errorf("client rebuilt %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(types(evs), ","), events.GenReset) {
		t.Errorf("event types = %v, want a reset", types(evs))
	}
	reqs := e.answerRequests()
	if len(reqs) != 2 || !reqs[0].Cancelled {
		t.Errorf("provider requests = %d (first cancelled: %v), want 2 with the first cancelled", len(reqs), len(reqs) > 0 && reqs[0].Cancelled)
	}
}
