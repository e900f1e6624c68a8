package store

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
)

func newOutboxStore(t *testing.T) (*Store, *sql.DB) {
	t.Helper()
	d := testdb.New(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, d.DB, "chat"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := New(ctx, d.DB)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return s, d.DB
}

func insertOutboxRow(ctx context.Context, q querier, at time.Time) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	_, err := q.ExecContext(ctx, "INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, 'test.subject', '{}', ?)", id, at)
	return id, err
}

type outboxState struct {
	Published bool
	Leased    bool
	Attempts  int
}

func outboxStates(t *testing.T, sqlDB *sql.DB) map[string]outboxState {
	t.Helper()
	rows, err := sqlDB.Query("SELECT id, published_at IS NOT NULL, COALESCE(locked_until > UTC_TIMESTAMP(6), FALSE), attempts FROM outbox")
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	defer rows.Close()
	out := map[string]outboxState{}
	for rows.Next() {
		var id string
		var s outboxState
		if err := rows.Scan(&id, &s.Published, &s.Leased, &s.Attempts); err != nil {
			t.Fatalf("read outbox row: %v", err)
		}
		out[id] = s
	}
	return out
}

// anyAge is a RelayOutbox bound that every row committed so far is under.
func anyAge() time.Time { return time.Now().Add(time.Hour) }

func ids(rows []OutboxRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

// While a relay holds a batch (publishing it), new rows can be inserted without waiting
// for it (no gap lock behind the batch), and a second relay takes only the rows the
// first does not hold. Every row ends published, taken once.
func TestRelayBatchBlocksNeitherInsertsNorOtherRelays(t *testing.T) {
	s, sqlDB := newOutboxStore(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Second)
	r1 := must(insertOutboxRow(ctx, sqlDB, t0))(t)
	r2 := must(insertOutboxRow(ctx, sqlDB, t0.Add(time.Millisecond)))(t)

	holding, release := make(chan []string), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := s.RelayOutbox(ctx, 100, time.Second, anyAge(), func(rows []OutboxRow) ([]string, []string) {
			holding <- ids(rows)
			<-release
			return ids(rows), nil
		})
		first <- err
	}()
	var held []string
	select {
	case held = <-holding:
	case err := <-first:
		t.Fatalf("first relay ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("first relay took nothing")
	}
	if want := []string{r1, r2}; !slices.Equal(held, want) {
		t.Fatalf("first relay took %v, want %v", held, want)
	}

	// A send's transaction inserting the next row must not wait for the batch.
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		t.Fatalf("set lock wait timeout: %v", err)
	}
	r3, err := insertOutboxRow(ctx, conn, time.Now().UTC())
	if err != nil {
		close(release)
		t.Fatalf("insert while a batch is being published: %v", err)
	}

	// A second relay takes the new row only.
	var second []string
	n, err := s.RelayOutbox(ctx, 100, time.Second, anyAge(), func(rows []OutboxRow) ([]string, []string) {
		second = ids(rows)
		return ids(rows), nil
	})
	close(release)
	if err != nil || n != 1 || !slices.Equal(second, []string{r3}) {
		t.Errorf("second relay: n=%d err=%v took %v, want [%s]", n, err, second, r3)
	}
	if err := <-first; err != nil {
		t.Fatalf("first relay: %v", err)
	}
	want := map[string]outboxState{r1: {Published: true, Attempts: 1}, r2: {Published: true, Attempts: 1}, r3: {Published: true, Attempts: 1}}
	if got := outboxStates(t, sqlDB); !mapsEqual(got, want) {
		t.Errorf("outbox = %+v, want %+v", got, want)
	}
}

// Rows whose publish failed are handed back for later; rows acknowledged are marked
// published even when the relay is stopping (its context ends during the publish).
func TestRelayBatchRecordsFailuresAndMarksWhileStopping(t *testing.T) {
	s, sqlDB := newOutboxStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Now().UTC().Add(-time.Second)
	r1 := must(insertOutboxRow(ctx, sqlDB, t0))(t)
	r2 := must(insertOutboxRow(ctx, sqlDB, t0.Add(time.Millisecond)))(t)
	n, err := s.RelayOutbox(ctx, 100, time.Hour, anyAge(), func(rows []OutboxRow) ([]string, []string) {
		cancel()
		return []string{r1}, []string{r2}
	})
	if err != nil || n != 2 {
		t.Fatalf("relay: n=%d err=%v", n, err)
	}
	want := map[string]outboxState{r1: {Published: true, Attempts: 1}, r2: {Leased: true, Attempts: 1}}
	if got := outboxStates(t, sqlDB); !mapsEqual(got, want) {
		t.Errorf("outbox = %+v, want %+v", got, want)
	}
	// r2 waits for its retry time; nothing else is due.
	n, err = s.RelayOutbox(context.Background(), 100, time.Hour, anyAge(), func(rows []OutboxRow) ([]string, []string) {
		t.Errorf("took %v, want nothing", ids(rows))
		return nil, nil
	})
	if err != nil || n != 0 {
		t.Errorf("second relay: n=%d err=%v, want 0 rows", n, err)
	}
}

func mapsEqual(a, b map[string]outboxState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// A poll takes only rows committed before its bound (younger ones are published by the
// process that committed them); MarkPublished marks rows once, in one statement, and
// leaves rows a poll published meanwhile as they are.
func TestRelayGraceAndMarkPublished(t *testing.T) {
	s, sqlDB := newOutboxStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	old := must(insertOutboxRow(ctx, sqlDB, now.Add(-10*time.Second)))(t)
	young := must(insertOutboxRow(ctx, sqlDB, now))(t)
	var took []string
	n, err := s.RelayOutbox(ctx, 100, time.Second, now.Add(-2*time.Second), func(rows []OutboxRow) ([]string, []string) {
		took = ids(rows)
		return ids(rows), nil
	})
	if err != nil || n != 1 || !slices.Equal(took, []string{old}) {
		t.Fatalf("poll with a 2 s grace: n=%d err=%v took %v, want [%s]", n, err, took, old)
	}
	if err := s.MarkPublished(ctx, []string{young, old}); err != nil {
		t.Fatal(err)
	}
	want := map[string]outboxState{old: {Published: true, Attempts: 1}, young: {Published: true, Attempts: 1}}
	if got := outboxStates(t, sqlDB); !mapsEqual(got, want) {
		t.Errorf("outbox = %+v, want %+v", got, want)
	}
}
