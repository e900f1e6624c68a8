package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testlog"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken/authtokentest"
	"github.com/parley-chat/parley/services/chat"
)

// TestShutdownWhileBusy: cancelling Run's context while clients keep sending makes
// Run return nil within the bound. Every send it acknowledged is stored whole (both
// messages and the outbox row: the endpoints stop and the requests in flight finish
// before the database closes), no request fails with an internal error, later
// requests find no responder, and the operations endpoint is gone.
func TestShutdownWhileBusy(t *testing.T) {
	d := testdb.New(t)
	ns := testnats.New(t)
	nc := testnats.Connect(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(events.SubjectModelsList, func(m *nats.Msg) {
		body, _ := json.Marshal(events.ModelsReply{Models: testModels})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsAddr := ln.Addr().String()
	ln.Close()
	e := &env{t: t, db: d.DB, ns: ns, nc: nc, js: js, tokens: authtokentest.Serve(t, nc), cfg: chat.Config{
		NATSURL: ns.ClientURL(),
		DB:      db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name},
		OpsAddr: opsAddr,
	}}
	logs := &testlog.Buffer{}
	log := events.WithRequestIDLogging(slog.New(slog.NewJSONHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- chat.Run(ctx, e.cfg, chat.Deps{Logger: log}) }()
	waitFor(t, "chat to answer", func() bool {
		_, err := latest(e, newUser())
		var ee *events.Error
		return errors.As(err, &ee) && ee.Code == events.CodeNoChats
	})

	// A replayed send is logged with the id of the request that replayed it.
	user := newUser()
	c := mustCreate(t, e, user)
	sendReq := events.SendMessageRequest{UserID: user, ChatID: c.ID, Content: "hello", ClientMessageID: newUser()}
	for i := range 2 {
		rctx, rcancel := context.WithTimeout(events.WithRequestID(e.tokens.Context(context.Background(), user), fmt.Sprintf("req-replay-%d", i)), 10*time.Second)
		_, err := events.Request[events.SendMessageRequest, events.SendMessageReply](rctx, nc, events.SubjectMessageSend, sendReq)
		rcancel()
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	var replayLogged bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, `"send replayed"`) {
			replayLogged = true
			if !strings.Contains(line, `"request_id":"req-replay-1"`) {
				t.Errorf("replay logged without its request id: %s", line)
			}
		}
	}
	if !replayLogged {
		t.Errorf("no log line for the replayed send:\n%s", logs.String())
	}
	// The operations listener starts last: wait for it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		res, err := http.Get("http://" + opsAddr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz before stop: %v %v", res, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Clients creating chats and sending all the time, each as a user of its own.
	type sent struct{ userID, user, assistant string }
	var (
		mu       sync.Mutex
		acked    []sent
		failures []error
		wg       sync.WaitGroup
		count    atomic.Int64
		stop     = make(chan struct{})
	)
	for range 6 {
		wg.Go(func() {
			u := newUser()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// A chat with an answer pending takes no new message: one chat per send.
				c, err := createChat(e, events.CreateChatRequest{UserID: u})
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Errorf("create chat: %w", err))
					mu.Unlock()
					return
				}
				r, err := send(e, u, c.ID, fmt.Sprintf("message %d", i), "")
				mu.Lock()
				if err == nil {
					acked = append(acked, sent{u, r.UserMessage.ID, r.AssistantMessage.ID})
					count.Add(1)
				} else {
					failures = append(failures, err)
				}
				mu.Unlock()
				if err != nil {
					return // the service is gone
				}
			}
		})
	}
	waitFor(t, "sends under way", func() bool { return count.Load() >= 30 })
	stopped := time.Now()
	cancel()
	const bound = 10 * time.Second
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(bound):
		t.Fatalf("Run did not return within %v", bound)
	}
	t.Logf("stopped in %v", time.Since(stopped).Round(time.Millisecond))
	close(stop)
	wg.Wait()

	for _, err := range failures {
		var ee *events.Error
		if !errors.As(err, &ee) || (ee.Code != events.CodeUnavailable && ee.Code != events.CodeTimeout) {
			t.Errorf("a send failed other than by finding the service gone: %v", err)
		}
	}
	// Every acknowledged send is stored whole.
	for _, s := range acked {
		var msgs, events int
		if err := d.DB.QueryRow("SELECT COUNT(*) FROM messages WHERE id IN (?, ?)", s.user, s.assistant).Scan(&msgs); err != nil {
			t.Fatal(err)
		}
		if err := d.DB.QueryRow("SELECT COUNT(*) FROM outbox WHERE payload LIKE ?", "%"+s.assistant+"%").Scan(&events); err != nil {
			t.Fatal(err)
		}
		if msgs != 2 || events != 1 {
			t.Errorf("acknowledged send %s: %d messages, %d outbox rows; want 2 and 1", s.assistant, msgs, events)
		}
	}
	t.Logf("%d sends acknowledged, %d refused at the stop", len(acked), len(failures))

	// No new work after the stop.
	if _, err := latest(e, user); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("request after stop: %v, want unavailable", err)
	}
	if res, err := http.Get("http://" + opsAddr + "/healthz"); err == nil {
		res.Body.Close()
		t.Error("operations endpoint still serving after stop")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("error logged around the stop: %s", line)
		}
	}
}
