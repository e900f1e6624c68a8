package chat_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/natsserver"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken/authtokentest"
	"github.com/parley-chat/parley/services/chat"
)

const (
	defaultModel = "test/default-model"
	otherModel   = "test/other-model"
)

var testModels = []events.Model{
	{ID: defaultModel, Name: "Default", Provider: events.ProviderDemo, Default: true},
	{ID: otherModel, Name: "Other", Provider: events.ProviderDemo},
}

// env is one running chat service with its own database and NATS server.
type env struct {
	t        *testing.T
	cfg      chat.Config
	db       *sql.DB
	ns       *server.Server
	natsDir  string
	natsPort int
	nc       *nats.Conn
	js       jetstream.JetStream
	// tokens stands in for auth: it serves the token keys, and request forwards a
	// token of the payload's user, as the gateway does.
	tokens *authtokentest.Issuer
}

type envOption func(*chat.Config)

// newEnv starts NATS (in a directory of its own, so it can be restarted), a models
// responder, and chat.Run; it returns once chat answers.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvOn(t, testdb.New(t), opts...)
}

// newEnvOn is newEnv on an existing test database.
func newEnvOn(t *testing.T, d *testdb.Database, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, db: d.DB, natsDir: t.TempDir()}
	e.startNATS(0)
	t.Cleanup(func() { e.ns.Shutdown() })

	nc, err := nats.Connect(e.ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect test client: %v", err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	e.tokens = authtokentest.Serve(t, nc)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	sub, err := nc.Subscribe(events.SubjectModelsList, func(m *nats.Msg) {
		body, _ := json.Marshal(events.ModelsReply{Models: testModels})
		_ = m.Respond(body)
	})
	if err != nil {
		t.Fatalf("serve models: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	e.cfg = chat.Config{
		NATSURL: e.ns.ClientURL(),
		DB:      db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name},
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.run()
	return e
}

func (e *env) startNATS(port int) {
	e.t.Helper()
	ns, err := natsserver.Start(natsserver.Options{Port: port, StoreDir: e.natsDir})
	if err != nil {
		e.t.Fatalf("start nats: %v", err)
	}
	e.ns = ns
	e.natsPort = ns.Addr().(*net.TCPAddr).Port
}

// run starts chat.Run and stops it (checking its error) at cleanup.
func (e *env) run() {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	w := &testWriter{t: t}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- chat.Run(ctx, e.cfg, chat.Deps{Logger: log}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("chat.Run returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("chat.Run did not stop")
		}
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	var lastErr error
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, lastErr = latest(e, newUser())
		var ee *events.Error
		if errors.As(lastErr, &ee) && ee.Code == events.CodeNoChats {
			e.waitForStreams()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("chat.Run stopped at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chat does not answer: %v", lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForStreams waits (a while, without failing) until chat's relay has created
// GENERATIONS: it does so in the background at start, and a test publishing a
// generation event (a cancel) right away would otherwise race it.
func (e *env) waitForStreams() {
	deadline := time.Now().Add(10 * time.Second)
	for e.nc.IsConnected() && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.js.Stream(ctx, events.StreamGenerations)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testWriter sends the service's log lines to the test log while the test runs.
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)

func newUser() string { return uuid.Must(uuid.NewV7()).String() }

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func request[Req, Rep any](e *env, subject string, req Req) (Rep, error) {
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

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ee *events.Error
	if !errors.As(err, &ee) {
		t.Fatalf("got error %v, want code %s", err, code)
	}
	if ee.Code != code {
		t.Fatalf("got code %s (%s), want %s", ee.Code, ee.Message, code)
	}
}

func createChat(e *env, req events.CreateChatRequest) (events.Chat, error) {
	rep, err := request[events.CreateChatRequest, events.ChatReply](e, events.SubjectChatCreate, req)
	return rep.Chat, err
}

func mustCreate(t *testing.T, e *env, userID string) events.Chat {
	t.Helper()
	return must(createChat(e, events.CreateChatRequest{UserID: userID}))(t)
}

func latest(e *env, userID string) (events.Chat, error) {
	rep, err := request[events.ChatRef, events.ChatReply](e, events.SubjectChatLatest, events.ChatRef{UserID: userID})
	return rep.Chat, err
}

func getChat(e *env, userID, chatID string) (events.Chat, error) {
	rep, err := request[events.ChatRef, events.ChatReply](e, events.SubjectChatGet, events.ChatRef{UserID: userID, ChatID: chatID})
	return rep.Chat, err
}

func send(e *env, userID, chatID, content, clientID string) (events.SendMessageReply, error) {
	return request[events.SendMessageRequest, events.SendMessageReply](e, events.SubjectMessageSend,
		events.SendMessageRequest{UserID: userID, ChatID: chatID, Content: content, ClientMessageID: clientID})
}

func getMessage(e *env, userID, id string) (events.Message, error) {
	rep, err := request[events.MessageRef, events.MessageReply](e, events.SubjectMessageGet, events.MessageRef{UserID: userID, MessageID: id})
	return rep.Message, err
}

func listMessages(e *env, userID, chatID string, limit int, before string) (events.ListMessagesReply, error) {
	return request[events.ListMessagesRequest, events.ListMessagesReply](e, events.SubjectMessageList,
		events.ListMessagesRequest{UserID: userID, ChatID: chatID, Limit: limit, Before: before})
}

func listChats(e *env, req events.ListChatsRequest) (events.ListChatsReply, error) {
	return request[events.ListChatsRequest, events.ListChatsReply](e, events.SubjectChatList, req)
}

func complete(e *env, req events.CompleteMessageRequest) (events.Message, error) {
	rep, err := request[events.CompleteMessageRequest, events.MessageReply](e, events.SubjectMessageComplete, req)
	return rep.Message, err
}

func startMessage(e *env, id string) (events.Message, error) {
	rep, err := request[events.StartMessageRequest, events.MessageReply](e, events.SubjectMessageStart, events.StartMessageRequest{MessageID: id, Attempt: 1})
	return rep.Message, err
}

func cancelMessage(e *env, userID, id string) (events.Message, error) {
	rep, err := request[events.MessageRef, events.MessageReply](e, events.SubjectMessageCancel, events.MessageRef{UserID: userID, MessageID: id})
	return rep.Message, err
}

func regenerate(e *env, userID, chatID string) (events.Message, error) {
	rep, err := request[events.ChatRef, events.RegenerateReply](e, events.SubjectChatRegenerate, events.ChatRef{UserID: userID, ChatID: chatID})
	return rep.AssistantMessage, err
}

// exchange sends content and completes its answer with reply.
func exchange(t *testing.T, e *env, userID, chatID, content, reply string) events.SendMessageReply {
	t.Helper()
	r := must(send(e, userID, chatID, content, ""))(t)
	done := must(complete(e, events.CompleteMessageRequest{MessageID: r.AssistantMessage.ID, Status: events.StatusComplete, Content: reply}))(t)
	r.AssistantMessage = done
	return r
}

type outboxRow struct {
	ID        string
	Subject   string
	Event     events.Event
	Published bool
}

func outbox(t *testing.T, e *env) []outboxRow {
	t.Helper()
	rows, err := e.db.Query("SELECT id, subject, payload, published_at IS NOT NULL FROM outbox ORDER BY created_at, id")
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var payload []byte
		if err := rows.Scan(&r.ID, &r.Subject, &payload, &r.Published); err != nil {
			t.Fatalf("scan outbox: %v", err)
		}
		if err := json.Unmarshal(payload, &r.Event); err != nil {
			t.Fatalf("decode outbox payload: %v", err)
		}
		out = append(out, r)
	}
	return out
}

func countRows(t *testing.T, e *env, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

type streamed struct {
	MsgID string
	Event events.Event
}

// streamEvents returns the events in CHAT_EVENTS, in order.
func streamEvents(t *testing.T, e *env) []streamed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, events.StreamChatEvents)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	info := s.CachedInfo()
	var out []streamed
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get stream msg %d: %v", seq, err)
		}
		var ev events.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("decode stream msg: %v", err)
		}
		if ev.Type != m.Subject {
			t.Errorf("event type %s published on %s", ev.Type, m.Subject)
		}
		out = append(out, streamed{MsgID: m.Header.Get(jetstream.MsgIDHeader), Event: ev})
	}
	return out
}

// lastGeneration returns the last generation event of a message, if any.
func lastGeneration(t *testing.T, e *env, messageID string) (events.GenerationEvent, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, _, ok, err := events.LastGenerationEvent(ctx, e.js, messageID)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.As(err, &apiErr) {
			return events.GenerationEvent{}, false
		}
		t.Fatalf("read generation events: %v", err)
	}
	return ev, ok
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// subscribeCancel listens on the core NATS cancel subject of a message.
func subscribeCancel(t *testing.T, e *env, messageID string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 4)
	sub, err := e.nc.ChanSubscribe(events.SubjectCancel(messageID), ch)
	if err != nil {
		t.Fatalf("subscribe cancel: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return ch
}

func waitBroadcast(t *testing.T, ch chan *nats.Msg) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no cancel broadcast")
	}
}
