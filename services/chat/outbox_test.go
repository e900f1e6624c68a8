package chat_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat"
)

// Rows committed while NATS is down stay in the outbox and are published, once, when
// it is back: the reaper writes message.completed during the outage.
func TestOutboxRowsWrittenWhileNATSIsDownArePublishedLater(t *testing.T) {
	e := newEnv(t, func(c *chat.Config) {
		c.GenerationTimeout = 2 * time.Second
		c.ReapInterval = 100 * time.Millisecond
	})
	user := newUser()
	c := mustCreate(t, e, user)
	r := must(send(e, user, c.ID, "q", ""))(t)
	waitFor(t, "message.created to be published", func() bool { return len(streamEvents(t, e)) == 1 })

	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	var row outboxRow
	waitFor(t, "the reaper's message.completed row", func() bool {
		for _, r := range outbox(t, e) {
			if r.Subject == events.SubjectMessageCompleted {
				row = r
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond) // let the relay try (and fail) a few times
	if rows := outbox(t, e); rows[len(rows)-1].Published {
		t.Fatalf("row %s marked published while NATS was down", row.ID)
	}
	var status string
	if err := e.db.QueryRow("SELECT status FROM messages WHERE id = ?", r.AssistantMessage.ID).Scan(&status); err != nil || status != events.StatusFailed {
		t.Fatalf("answer status = %q (%v), want failed", status, err)
	}

	e.startNATS(e.natsPort)
	waitFor(t, "the row to be published after NATS is back", func() bool {
		for _, r := range outbox(t, e) {
			if !r.Published {
				return false
			}
		}
		return true
	})
	got := streamEvents(t, e)
	if len(got) != 2 {
		t.Fatalf("stream holds %d events, want 2", len(got))
	}
	if got[1].MsgID != row.ID || got[1].Event.Type != events.SubjectMessageCompleted {
		t.Errorf("published %+v, want %s with Nats-Msg-Id %s", got[1], events.SubjectMessageCompleted, row.ID)
	}
	// The service still answers after the outage.
	if m := must(getMessage(e, user, r.AssistantMessage.ID))(t); m.Status != events.StatusFailed {
		t.Errorf("status = %s", m.Status)
	}
}

// Rows left unpublished by a crash are published at the next start.
func TestOutboxRowsLeftByACrashArePublishedAtStart(t *testing.T) {
	d := testdb.New(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, d.DB, "chat"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	ev := must(events.NewEvent(newUser(), events.SubjectChatUpdated, "chat", time.Now(), events.ChatUpdated{UserID: newUser()}))(t)
	payload, _ := json.Marshal(ev)
	// Leased by a relay that then died: the lease has run out.
	if _, err := d.DB.Exec("INSERT INTO outbox (id, subject, payload, created_at, locked_until, attempts) VALUES (?, ?, ?, ?, ?, 1)",
		ev.ID, ev.Type, payload, time.Now().UTC(), time.Now().UTC().Add(-time.Second)); err != nil {
		t.Fatalf("insert outbox row: %v", err)
	}
	e := newEnvOn(t, d)
	waitFor(t, "the crash-left row to be published", func() bool { return len(streamEvents(t, e)) == 1 })
	got := streamEvents(t, e)[0]
	if got.MsgID != ev.ID || got.Event.ID != ev.ID {
		t.Errorf("published %+v, want id %s", got, ev.ID)
	}
	waitFor(t, "published_at", func() bool { return outbox(t, e)[0].Published })
}

// Two replicas share the database and NATS: requests go to either, and every outbox
// row is published exactly once.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t)
	e.run() // a second replica
	user := newUser()
	const chats = 10
	errs := make(chan error, chats)
	for range chats {
		go func() {
			c, err := createChat(e, events.CreateChatRequest{UserID: user})
			if err == nil {
				_, err = send(e, user, c.ID, "hello", "")
			}
			errs <- err
		}()
	}
	for range chats {
		if err := <-errs; err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	waitFor(t, "every row published", func() bool {
		for _, r := range outbox(t, e) {
			if !r.Published {
				return false
			}
		}
		return true
	})
	if got := streamEvents(t, e); len(got) != chats {
		t.Errorf("stream holds %d events, want %d", len(got), chats)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM outbox WHERE attempts <> 1"); n != 0 {
		t.Errorf("%d rows were claimed more than once", n)
	}
}
