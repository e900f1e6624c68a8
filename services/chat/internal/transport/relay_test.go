package transport

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat/internal/app"
	"github.com/parley-chat/parley/services/chat/internal/store"
)

// TestRelayPublishesCommitsDirectly: an event is published right after the commit that
// wrote it, without waiting for a poll (the poll's grace is an hour here, so nothing
// else could publish it), in commit order, and its outbox row is marked published.
func TestRelayPublishesCommitsDirectly(t *testing.T) {
	d := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := db.Migrate(ctx, d.DB, "chat"); err != nil {
		t.Fatal(err)
	}
	st, err := store.New(ctx, d.DB)
	if err != nil {
		t.Fatal(err)
	}
	nc := testnats.Connect(t, testnats.New(t).ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRelay(st, nc, js, slog.New(slog.DiscardHandler))
	r.Grace = time.Hour
	if err := r.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	var want []string
	for range 3 {
		ev := events.Event{ID: uuid.Must(uuid.NewV7()).String(), Type: events.SubjectChatUpdated, Source: "chat",
			Time: time.Now().UTC(), Version: 1, Data: json.RawMessage(`{}`)}
		if err := st.InTx(ctx, func(ctx context.Context, tx app.Tx) error { return tx.AddEvent(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.ID)
	}

	stream, err := js.Stream(ctx, events.StreamChatEvents)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = got[:0]
		for seq := uint64(1); ; seq++ {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil {
				break
			}
			var ev events.Event
			_ = json.Unmarshal(m.Data, &ev)
			got = append(got, ev.ID)
		}
		var unpublished int
		if err := d.DB.QueryRow("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").Scan(&unpublished); err != nil {
			t.Fatal(err)
		}
		if len(got) == len(want) && unpublished == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("stream holds %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stream order %v, want %v", got, want)
		}
	}
	var unpublished int
	if err := d.DB.QueryRow("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").Scan(&unpublished); err != nil || unpublished != 0 {
		t.Errorf("%d outbox rows not marked published (%v)", unpublished, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("relay: %v", err)
	}
}
