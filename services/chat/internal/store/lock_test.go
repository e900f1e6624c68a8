package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/parley-chat/parley/services/chat/internal/app"
)

// LockMessageIn reads the chat and the message with one statement and holds both row
// locks until the transaction ends; a message of another chat is not found.
func TestLockMessageInLocksChatAndMessage(t *testing.T) {
	s, sqlDB := newOutboxStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	user, chatA, chatB, msg := newID(), newID(), newID(), newID()
	for _, c := range []string{chatA, chatB} {
		if _, err := sqlDB.Exec("INSERT INTO chats (id, user_id, title, model, system_prompt, created_at, updated_at) VALUES (?, ?, 't', 'm', 'be brief', ?, ?)",
			c, user, now, now); err != nil {
			t.Fatalf("insert chat: %v", err)
		}
	}
	if _, err := sqlDB.Exec(`INSERT INTO messages (id, chat_id, user_id, role, content, status, model, reply_to, created_at, attempt_id)
		VALUES (?, ?, ?, 'assistant', 'partial', 'streaming', 'm', ?, ?, 'a1')`, msg, chatA, user, newID(), now); err != nil {
		t.Fatalf("insert message: %v", err)
	}

	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		t.Fatalf("set lock wait timeout: %v", err)
	}
	err = s.InTx(ctx, func(ctx context.Context, atx app.Tx) error {
		m, c, err := atx.LockMessageIn(ctx, chatA, msg)
		if err != nil {
			return err
		}
		if c.ID != chatA || c.SystemPrompt != "be brief" || !c.CreatedAt.Equal(now) || m.ID != msg || m.ChatID != chatA ||
			m.Content != "partial" || m.AttemptID != "a1" || !m.CreatedAt.Equal(now) {
			t.Errorf("read chat %+v and message %+v", c, m)
		}
		for q, arg := range map[string]string{
			"SELECT id FROM chats WHERE id = ? FOR UPDATE":    chatA,
			"SELECT id FROM messages WHERE id = ? FOR UPDATE": msg,
		} {
			var id string
			if err := conn.QueryRowContext(ctx, q, arg).Scan(&id); err == nil {
				t.Errorf("%s: not locked", q)
			}
		}
		if _, _, err := atx.LockMessageIn(ctx, chatB, msg); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("message in another chat: err = %v, want not found", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
}

// InsertMessages stores every message with one statement, seqs in argument order.
func TestInsertMessages(t *testing.T) {
	s, sqlDB := newOutboxStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	user, chat := newID(), newID()
	if _, err := sqlDB.Exec("INSERT INTO chats (id, user_id, title, model, created_at, updated_at) VALUES (?, ?, 't', 'm', ?, ?)",
		chat, user, now, now); err != nil {
		t.Fatalf("insert chat: %v", err)
	}
	q := app.Message{ID: newID(), ChatID: chat, UserID: user, Role: "user", Content: "it's a \\ question",
		Status: "complete", ClientMessageID: "c1", CreatedAt: now}
	a := app.Message{ID: newID(), ChatID: chat, UserID: user, Role: "assistant", Status: "pending", Model: "m",
		ReplyTo: q.ID, CreatedAt: now}
	if err := s.InTx(ctx, func(ctx context.Context, atx app.Tx) error { return atx.InsertMessages(ctx, &q, &a) }); err != nil {
		t.Fatalf("insert: %v", err)
	}
	got := must(s.Messages(ctx, chat, 0, 10))(t) // newest first
	if len(got) != 2 || got[1].Seq >= got[0].Seq {
		t.Fatalf("stored %+v", got)
	}
	q.Seq, a.Seq = got[1].Seq, got[0].Seq
	if diff := cmp.Diff([]app.Message{a, q}, got); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	// A duplicate client id refuses the whole statement.
	dup := q
	dup.ID = newID()
	b := a
	b.ID = newID()
	err := s.InTx(ctx, func(ctx context.Context, atx app.Tx) error { return atx.InsertMessages(ctx, &b, &dup) })
	if !errors.Is(err, app.ErrConflict) {
		t.Errorf("duplicate client id: err = %v, want conflict", err)
	}
	if n := len(must(s.Messages(ctx, chat, 0, 10))(t)); n != 2 {
		t.Errorf("%d messages after the refused insert, want 2", n)
	}
}

// Thread reads the chat and the messages up to the one asked for, of that chat only,
// with one query.
func TestThread(t *testing.T) {
	s, sqlDB := newOutboxStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	user, chat, other := newID(), newID(), newID()
	for _, c := range []string{chat, other} {
		if _, err := sqlDB.Exec("INSERT INTO chats (id, user_id, title, model, system_prompt, created_at, updated_at) VALUES (?, ?, ?, 'm', 'sp', ?, ?)",
			c, user, "title "+c, now, now); err != nil {
			t.Fatalf("insert chat: %v", err)
		}
	}
	var ids []string
	for i, c := range []string{chat, other, chat, chat, other, chat} {
		id := newID()
		if _, err := sqlDB.Exec(`INSERT INTO messages (id, chat_id, user_id, role, content, status, created_at)
			VALUES (?, ?, ?, 'user', ?, 'complete', ?)`, id, c, user, fmt.Sprint("m", i), now); err != nil {
			t.Fatalf("insert message: %v", err)
		}
		ids = append(ids, id)
	}
	c, ms, err := s.Thread(ctx, ids[3])
	if err != nil {
		t.Fatalf("thread: %v", err)
	}
	if want := must(s.ChatByID(ctx, chat))(t); !cmp.Equal(c, want) {
		t.Errorf("chat %+v, want %+v", c, want)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Content)
	}
	if want := []string{"m0", "m2", "m3"}; !cmp.Equal(got, want) {
		t.Errorf("thread %v, want %v", got, want)
	}
	if _, _, err := s.Thread(ctx, newID()); !errors.Is(err, app.ErrNotFound) {
		t.Errorf("missing message: err = %v, want not found", err)
	}
}
