package streams_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// chatEventConsumers lists the consumers on CHAT_EVENTS.
func chatEventConsumers(js jetstream.JetStream) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamChatEvents)
	if err != nil {
		return nil, err
	}
	var out []string
	names := st.ConsumerNames(ctx)
	for n := range names.Name() {
		out = append(out, n)
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, err
	}
	return out, nil
}

// wantChatConsumers waits until CHAT_EVENTS has exactly the inference workers' durable
// consumer and one reader per gateway replica (a stream's catch-up consumer is gone
// once it has caught up).
func wantChatConsumers(t *testing.T, s *e2e.Stack, js jetstream.JetStream, what string) {
	t.Helper()
	e2e.Eventually(t, 5*time.Second, "consumers on CHAT_EVENTS "+what, func() error {
		names, err := chatEventConsumers(js)
		if err != nil {
			return err
		}
		readers := 0
		for _, n := range names {
			if n != events.ConsumerInference {
				readers++
			}
		}
		if len(names) != readers+1 || readers != len(s.Gateways) {
			return fmt.Errorf("%d consumers %v, want %q and one per gateway replica (%d)", len(names), names, events.ConsumerInference, len(s.Gateways))
		}
		return nil
	})
}

func renamed(title string) func(e2e.Event) bool {
	return func(e e2e.Event) bool { return e.Event == "chat.updated" && titleOf(e) == title }
}

func titleOf(e e2e.Event) string {
	var u struct {
		Chat events.Chat `json:"chat"`
	}
	_ = jsonUnmarshal([]byte(e.Data), &u)
	return u.Chat.Title
}

// testManyChatWatchers: 20 users watch their own chat, on both replicas, one chat on
// both at once, while all of them rename their chats: each watcher gets exactly its
// chat's events, in order, and CHAT_EVENTS keeps one consumer per gateway replica
// (plus the workers' durable) however many watchers are open.
func testManyChatWatchers(t *testing.T, s *e2e.Stack) {
	const users, renames = 20, 3
	js := s.JetStream()
	wantChatConsumers(t, s, js, "before the watchers")

	type watcher struct {
		u    *e2e.Client
		chat events.Chat
		es   *e2e.EventStream
	}
	var ws []watcher
	for i := range users {
		u := s.User(fmt.Sprintf("watch_%02d", i)).WithT(t)
		c := u.CreateChat(fmt.Sprintf("watched %d", i))
		es := u.On(i % 2).Open("/api/chats/" + c.ID + "/events")
		if es.Status != http.StatusOK {
			t.Fatalf("watcher %d: %d", i, es.Status)
		}
		ws = append(ws, watcher{u: u, chat: c, es: es})
	}
	second := ws[0].u.On(1).Open("/api/chats/" + ws[0].chat.ID + "/events")
	if second.Status != http.StatusOK {
		t.Fatalf("second watcher: %d", second.Status)
	}
	wantChatConsumers(t, s, js, fmt.Sprintf("with %d watchers open", users+1))

	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			for r := range renames {
				w.u.Call("PATCH", "/api/chats/"+w.chat.ID, map[string]string{"title": fmt.Sprintf("chat %d rename %d", i, r)}, http.StatusOK, nil)
			}
		})
	}
	wg.Wait()

	check := func(name string, es *e2e.EventStream, i int) {
		last := fmt.Sprintf("chat %d rename %d", i, renames-1)
		got := es.Until(10*time.Second, renamed(last))
		var titles []string
		prev := 0
		for _, e := range got {
			var u events.ChatUpdated
			e2e.MustJSON(t, e.Data, &u)
			if e.Event != "chat.updated" || u.Chat.ID != ws[i].chat.ID {
				t.Errorf("%s got another chat's event: %s %s", name, e.Event, e.Data)
			}
			titles = append(titles, u.Chat.Title)
			if id, err := strconv.Atoi(e.ID); err != nil || id <= prev {
				t.Errorf("%s: id %s after %d", name, e.ID, prev)
			} else {
				prev = id
			}
		}
		var want []string
		for r := range renames {
			want = append(want, fmt.Sprintf("chat %d rename %d", i, r))
		}
		if diff := cmp.Diff(want, titles); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	for i, w := range ws {
		check(fmt.Sprintf("watcher %d", i), w.es, i)
	}
	check("second watcher of chat 0", second, 0)
	// Nothing of anyone else's follows.
	for i, w := range ws[:3] {
		if ev, ok, _ := w.es.NextEvent(200 * time.Millisecond); ok {
			t.Errorf("watcher %d then saw %s %s", i, ev.Event, ev.Data)
		}
	}
	for _, w := range ws {
		w.es.Close()
	}
	second.Close()
	wantChatConsumers(t, s, js, "after the watchers left")
}

// testChatEventsResume: a watcher that was away (its stream closed while the chat was
// renamed and a message answered) reconnects with the last id it saw, on either
// replica, and gets exactly the events it missed, in order, then live ones, with no
// repeat; the catch-up leaves no consumer behind.
func testChatEventsResume(t *testing.T, s *e2e.Stack) {
	u := s.User("resume_chat_jo").WithT(t)
	c := u.CreateChat("resume chat events")
	js := s.JetStream()
	rename := func(title string) {
		u.Call("PATCH", "/api/chats/"+c.ID, map[string]string{"title": title}, http.StatusOK, nil)
	}
	for replica := range 2 {
		watch := u.On(replica).Open("/api/chats/" + c.ID + "/events")
		seen := fmt.Sprintf("seen on %d", replica)
		rename(seen)
		got := watch.Until(10*time.Second, renamed(seen))
		lastID := got[len(got)-1].ID
		watch.Close()

		// Away: renames and a whole answer.
		var want []string
		for i := range 3 {
			title := fmt.Sprintf("missed %d on %d", i, replica)
			rename(title)
			want = append(want, "chat.updated "+title)
		}
		sent := u.Send(c.ID, "while the watcher was away")
		u.Stream(sent.AssistantMessage.ID)
		want = append(want, "message.created", "message.completed")

		// Back, on the other replica.
		again := u.On(1-replica).Open("/api/chats/"+c.ID+"/events", "Last-Event-ID", lastID)
		if again.Status != http.StatusOK {
			t.Fatalf("resume: %d", again.Status)
		}
		live := fmt.Sprintf("live after resuming on %d", 1-replica)
		rename(live)
		want = append(want, "chat.updated "+live)
		got = again.Until(10*time.Second, renamed(live))
		var names []string
		prev, _ := strconv.Atoi(lastID)
		for _, e := range got {
			n := e.Event
			if n == "chat.updated" {
				n += " " + titleOf(e)
			}
			names = append(names, n)
			if id, err := strconv.Atoi(e.ID); err != nil || id <= prev {
				t.Errorf("id %s after %d", e.ID, prev)
			} else {
				prev = id
			}
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("resumed after %s on replica %d (-want +got):\n%s", lastID, 1-replica, diff)
		}
		if ev, ok, _ := again.NextEvent(300 * time.Millisecond); ok {
			t.Errorf("then: %s %s", ev.Event, ev.Data)
		}
		again.Close()
	}
	wantChatConsumers(t, s, js, "after resuming")
}
