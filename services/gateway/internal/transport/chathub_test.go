package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// chatFixture is a gateway edge whose "chat" says which user owns which chat (chat.get)
// and whose CHAT_EVENTS stream is written by the test.
type chatFixture struct {
	*genFixture
	mu     sync.Mutex
	owners map[chatKey]bool
}

func newChatFixture(t *testing.T) *chatFixture {
	t.Helper()
	return newChatFixtureWith(t, newGenFixture(t))
}

func newChatFixtureWith(t *testing.T, gf *genFixture) *chatFixture {
	t.Helper()
	f := &chatFixture{genFixture: gf, owners: map[chatKey]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.js.CreateOrUpdateStream(ctx, events.ChatEventsStream(1)); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	h := func(m *nats.Msg) bool {
		if m.Subject != events.SubjectChatGet {
			return false
		}
		var ref events.ChatRef
		_ = json.Unmarshal(m.Data, &ref)
		f.mu.Lock()
		ok := f.owners[chatKey{chatID: ref.ChatID, userID: ref.UserID}]
		f.mu.Unlock()
		if !ok {
			return false
		}
		body, _ := json.Marshal(events.ChatReply{Chat: events.Chat{ID: ref.ChatID, Title: "t"}})
		_ = m.Respond(body)
		return true
	}
	f.chat.Store(&h)
	waitFor(t, "chat event hub reading", func() bool { return f.srv.chats.reading() })
	return f
}

// own makes chat c one of user u's, as far as chat.get says.
func (f *chatFixture) own(u, c string) {
	f.mu.Lock()
	f.owners[chatKey{chatID: c, userID: u}] = true
	f.mu.Unlock()
}

// publishChat stores a chat.updated event of chat c of user u titled title and returns
// its stream sequence and the event as a stream relays it.
func (f *chatFixture) publishChat(u, c, title string) sseEvent {
	f.t.Helper()
	data, _ := json.Marshal(events.ChatUpdated{UserID: u, Chat: events.Chat{ID: c, Title: title}})
	env := events.Event{ID: randomHex(8), Type: events.SubjectChatUpdated, Source: "chat", Time: time.Now(), Version: 1, Data: data}
	body, _ := json.Marshal(env)
	ack, err := f.js.Publish(context.Background(), events.SubjectChatUpdated, body)
	if err != nil {
		f.t.Fatalf("publish: %v", err)
	}
	return sseEvent{ID: strconv.FormatUint(ack.Sequence, 10), Event: "chat.updated", Data: string(data)}
}

// openChat opens the events of chat c as user u, with Last-Event-ID when after is set.
func (f *chatFixture) openChat(u, c, after string) *http.Response {
	f.t.Helper()
	cl := goodClaims()
	cl["sub"] = u
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.t.Cleanup(cancel)
	r, _ := http.NewRequestWithContext(ctx, "GET", f.http.URL+"/api/chats/"+c+"/events", nil)
	r.Header.Set("Authorization", "Bearer "+f.token(cl))
	if after != "" {
		r.Header.Set("Last-Event-ID", after)
	}
	res, err := f.http.Client().Do(r)
	if err != nil {
		f.t.Fatalf("open events of %s: %v", c, err)
	}
	f.t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		f.t.Fatalf("open events of %s as %s: %d %s", c, u, res.StatusCode, b)
	}
	return res
}

// chatConsumers lists the consumers on CHAT_EVENTS.
func chatConsumers(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamChatEvents)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	names := st.ConsumerNames(ctx)
	for n := range names.Name() {
		out = append(out, n)
	}
	return out
}

// TestChatStreamsManyWatchers: 20 users each watch their own chat (one chat twice, and
// one user watches another's chat id that chat wrongly says is theirs) while events of
// every chat interleave: each stream gets exactly its chat's events of its user, in
// order, and CHAT_EVENTS has one consumer (the hub's) however many streams are open.
func TestChatStreamsManyWatchers(t *testing.T) {
	f := newChatFixture(t)
	const users, rounds = 20, 5
	user := func(i int) string { return fmt.Sprintf("user-%02d", i) }
	chat := func(i int) string { return fmt.Sprintf("chat-%02d", i) }
	streams := make([]*http.Response, users)
	for i := range users {
		f.own(user(i), chat(i))
		streams[i] = f.openChat(user(i), chat(i), "")
	}
	second := f.openChat(user(0), chat(0), "")
	// A guessed chat id that passes the ownership check: the user still gets only
	// events that are theirs.
	f.own("spy", chat(1))
	spy := f.openChat("spy", chat(1), "")
	waitFor(t, "streams registered", func() bool { return f.srv.chats.open() == users+2 })

	if got := chatConsumers(t, f.js); len(got) != 1 {
		t.Errorf("consumers on %s with %d streams open: %v, want the hub's one", events.StreamChatEvents, users+2, got)
	}

	want := make([][]sseEvent, users)
	for r := range rounds {
		for i := range users {
			want[i] = append(want[i], f.publishChat(user(i), chat(i), fmt.Sprintf("round %d of %s", r, chat(i))))
		}
	}
	spyWant := []sseEvent{f.publishChat("spy", chat(1), "the spy's own")}

	var wg sync.WaitGroup
	got := make([][]sseEvent, users)
	for i := range users {
		wg.Go(func() { got[i] = readEvents(streams[i], rounds) })
	}
	var gotSecond, gotSpy []sseEvent
	wg.Go(func() { gotSecond = readEvents(second, rounds) })
	wg.Go(func() { gotSpy = readEvents(spy, 1) })
	wg.Wait()
	for i := range users {
		if diff := cmp.Diff(want[i], got[i]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", chat(i), diff)
		}
	}
	if diff := cmp.Diff(want[0], gotSecond); diff != "" {
		t.Errorf("second watcher of %s (-want +got):\n%s", chat(0), diff)
	}
	if diff := cmp.Diff(spyWant, gotSpy); diff != "" {
		t.Errorf("spy (-want +got):\n%s", diff)
	}
	// Nothing else follows: the next event of each stream is the next one published
	// for it.
	last := f.publishChat(user(3), chat(3), "last")
	if diff := cmp.Diff([]sseEvent{last}, readEvents(streams[3], 1)); diff != "" {
		t.Errorf("after the rounds (-want +got):\n%s", diff)
	}

	for _, res := range append(streams, second, spy) {
		res.Body.Close()
	}
	waitFor(t, "streams forgotten", func() bool { return f.srv.chats.open() == 0 })
	if got := chatConsumers(t, f.js); len(got) != 1 {
		t.Errorf("consumers on %s after the streams closed: %v", events.StreamChatEvents, got)
	}
}

// TestChatStreamResume: Last-Event-ID n gives every event of the chat after n exactly
// once and in order, stored and live, while events keep coming during the catch-up;
// the catch-up consumer goes away.
func TestChatStreamResume(t *testing.T) {
	f := newChatFixture(t)
	f.own("u1", "c1")
	var all []sseEvent
	for i := range 10 {
		all = append(all, f.publishChat("u1", "c1", fmt.Sprint("before ", i)))
		f.publishChat("u2", "c2", "noise")
		f.publishChat("u2", "c1", "another user's event naming c1")
	}
	for _, tc := range []struct {
		name   string
		missed int // events of the chat published while the client was away
	}{
		{"missed several", 6},
		{"missed one", 1},
		{"missed none", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := all[len(all)-1-tc.missed]
			// Events keep coming while the stream opens and catches up.
			var live []sseEvent
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range 30 {
					live = append(live, f.publishChat("u1", "c1", fmt.Sprintf("%s live %d", tc.name, i)))
					f.publishChat("u2", "c2", "noise")
				}
			}()
			res := f.openChat("u1", "c1", have.ID)
			<-done
			want := append(append([]sseEvent{}, all[len(all)-tc.missed:]...), live...)
			got := readEvents(res, len(want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("after %s (-want +got):\n%s", have.ID, diff)
			}
			res.Body.Close()
			all = append(all, live...)
		})
	}
	waitFor(t, "catch-up consumers gone", func() bool { return len(chatConsumers(t, f.js)) == 1 })
}

// TestChatStreamResumeAfterRecreate: CHAT_EVENTS deleted and created again numbers its
// events from 1 again; a client resuming with a Last-Event-ID from before gets every
// event of its chat in the new stream, stored and live, instead of nothing until the
// numbers pass its old id.
func TestChatStreamResumeAfterRecreate(t *testing.T) {
	f := newChatFixture(t)
	f.own("u1", "c1")
	var old sseEvent
	for i := range 20 {
		old = f.publishChat("u1", "c1", fmt.Sprint("old ", i))
	}
	open := f.openChat("u1", "c1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.js.DeleteStream(ctx, events.StreamChatEvents); err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.CreateStream(ctx, events.ChatEventsStream(1)); err != nil {
		t.Fatal(err)
	}
	st, err := f.js.Stream(ctx, events.StreamChatEvents)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "chat event hub reading the new stream", func() bool {
		return f.srv.chats.reading() && f.srv.chats.created.Load() == st.CachedInfo().Created.UnixNano()
	})
	// The stream open meanwhile ends, for its client to resume.
	if _, err := io.Copy(io.Discard, open.Body); err != nil {
		t.Errorf("the stream open during the recreation: %v", err)
	}
	want := []sseEvent{f.publishChat("u2", "c2", "noise"), f.publishChat("u1", "c1", "new 1"), f.publishChat("u1", "c1", "new 2")}[1:]
	res := f.openChat("u1", "c1", old.ID)
	want = append(want, f.publishChat("u1", "c1", "live"))
	if diff := cmp.Diff(want, readEvents(res, len(want))); diff != "" {
		t.Errorf("resumed after %s on the recreated stream (-want +got):\n%s", old.ID, diff)
	}
}

// TestChatStreamCatchUpKeepalive: a resumed stream whose catch-up reads many stored
// events of other chats keeps sending keepalive comments meanwhile, so proxies and the
// client do not give up on it before its first event.
func TestChatStreamCatchUpKeepalive(t *testing.T) {
	f := newChatFixtureWith(t, newGenFixtureWith(t, Options{KeepAlive: time.Millisecond}))
	f.own("u1", "c1")
	have := f.publishChat("u1", "c1", "seen")
	for range 1000 {
		f.publishChat("u2", "c2", "noise")
	}
	want := f.publishChat("u1", "c1", "missed")
	res := f.openChat("u1", "c1", have.ID)
	sc := bufio.NewScanner(res.Body)
	keepalives := 0
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "id: ") {
		if sc.Text() == ": keepalive" {
			keepalives++
		}
	}
	if sc.Text() != "id: "+want.ID {
		t.Fatalf("first event line %q, want id %s (err %v)", sc.Text(), want.ID, sc.Err())
	}
	if keepalives == 0 {
		t.Errorf("no keepalive comment during a catch-up over 1,000 other events")
	}
}

// TestChatStreamSlowListener: a client that does not read while many large events of
// its chat arrive does not hold up another chat's stream; the hub drops events for the
// slow one, which catches up from JetStream and still gets every event once, in order.
func TestChatStreamSlowListener(t *testing.T) {
	f := newChatFixture(t)
	f.own("slow", "cs")
	f.own("fast", "cf")
	slow := f.openChat("slow", "cs", "")
	fast := f.openChat("fast", "cf", "")
	waitFor(t, "streams registered", func() bool { return f.srv.chats.open() == 2 })

	const n = 200
	big := strings.Repeat("x", 64<<10)
	var wantSlow, wantFast []sseEvent
	for i := range n {
		wantSlow = append(wantSlow, f.publishChat("slow", "cs", strconv.Itoa(i)+big))
		if i%10 == 0 {
			wantFast = append(wantFast, f.publishChat("fast", "cf", strconv.Itoa(i)))
		}
	}
	// The slow client has not read a byte yet.
	if diff := cmp.Diff(wantFast, readEvents(fast, len(wantFast))); diff != "" {
		t.Errorf("fast stream (-want +got):\n%s", diff)
	}
	if f.srv.chats.dropped.Load() == 0 {
		t.Fatalf("the hub dropped nothing for the slow stream: the test did not exercise falling behind")
	}
	got := readEvents(slow, n)
	if len(got) != n {
		t.Fatalf("slow stream: %d events, want %d", len(got), n)
	}
	for i := range got {
		if got[i] != wantSlow[i] {
			t.Fatalf("slow stream event %d: id %s %.20q, want id %s %.20q", i, got[i].ID, got[i].Data, wantSlow[i].ID, wantSlow[i].Data)
		}
	}
	// Live again after catching up.
	next := f.publishChat("slow", "cs", "after")
	if diff := cmp.Diff([]sseEvent{next}, readEvents(slow, 1)); diff != "" {
		t.Errorf("slow stream after catching up (-want +got):\n%s", diff)
	}
}

// TestChatStreamReaderStops: when the replica's reader stops, its streams end (the
// client resumes), and resuming where the ended stream stopped misses nothing.
func TestChatStreamReaderStops(t *testing.T) {
	f := newChatFixture(t)
	f.own("u1", "c1")
	res := f.openChat("u1", "c1", "")
	first := f.publishChat("u1", "c1", "first")
	if diff := cmp.Diff([]sseEvent{first}, readEvents(res, 1)); diff != "" {
		t.Fatalf("before the stop (-want +got):\n%s", diff)
	}
	f.srv.chats.stopReader()
	ended := make(chan []sseEvent, 1)
	go func() { ended <- readEvents(res, 1) }()
	select {
	case rest := <-ended:
		if len(rest) != 0 {
			t.Errorf("after the reader stopped: %v", rest)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when the reader stopped")
	}
	missed := f.publishChat("u1", "c1", "while away")
	waitFor(t, "reader back", f.srv.chats.reading)
	again := f.openChat("u1", "c1", first.ID)
	if diff := cmp.Diff([]sseEvent{missed}, readEvents(again, 1)); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
	live := f.publishChat("u1", "c1", "live")
	if diff := cmp.Diff([]sseEvent{live}, readEvents(again, 1)); diff != "" {
		t.Errorf("live after resuming (-want +got):\n%s", diff)
	}
}
