// Package streams_test proves, end to end through the gateway with every real
// component, how answers stream: resuming on another gateway replica, ?after=n,
// finished answers, keepalives, clients going away, live chat events, cancel,
// regenerate, one answer at a time per chat and idempotent sends.
package streams_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// keepAlive is the gateways' keepalive interval here, small enough to watch.
const keepAlive = 300 * time.Millisecond

// longReply is an answer of 24 words; with the fake's token delay it takes about a
// second to stream.
var longReply = strings.TrimSpace(strings.Repeat("lorem ipsum dolor sit amet consectetur ", 4))

// TestStreams runs every scenario against one product with two gateway replicas; the
// scenarios share the fake's script, so they run one after another.
func TestStreams(t *testing.T) {
	s := e2e.New(t, e2e.Options{
		Gateways:  2,
		KeepAlive: keepAlive,
		HFOptions: fakehf.Options{TokenDelay: 40 * time.Millisecond},
	})
	t.Run("resume on another replica", func(t *testing.T) { testResume(t, s) })
	t.Run("keepalive", func(t *testing.T) { testKeepAlive(t, s) })
	t.Run("client going away", func(t *testing.T) { testClientGone(t, s) })
	t.Run("live chat events", func(t *testing.T) { testChatEvents(t, s) })
	t.Run("many chat watchers", func(t *testing.T) { testManyChatWatchers(t, s) })
	t.Run("chat events resume", func(t *testing.T) { testChatEventsResume(t, s) })
	t.Run("cancel", func(t *testing.T) { testCancel(t, s) })
	t.Run("one answer at a time", func(t *testing.T) { testOneAtATime(t, s) })
	t.Run("regenerate", func(t *testing.T) { testRegenerate(t, s) })
	t.Run("idempotent send", func(t *testing.T) { testIdempotentSend(t, s) })
}

func ids(evs []e2e.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// testResume: part of a stream from replica 0, the rest from replica 1 with
// Last-Event-ID: no gap, no repeat; then ?after=n and a fresh look at the finished
// answer.
func testResume(t *testing.T, s *e2e.Stack) {
	u := s.User("resume_ann").WithT(t)
	c := u.CreateChat("resume")
	s.HF.Enqueue("", fakehf.Step{Reply: longReply})
	sent := u.Send(c.ID, "tell me a long story")
	path := "/api/messages/" + sent.AssistantMessage.ID + "/stream"

	first := u.On(0).Open(path)
	var part1 []e2e.Event
	for len(part1) < 3 {
		ev, ok, ended := first.NextEvent(10 * time.Second)
		if !ok || ended {
			t.Fatalf("first part: %v then ended=%v", e2e.Names(part1), ended)
		}
		if e2e.IsFinal(ev) {
			t.Fatalf("the answer finished before the test could resume it: %v", e2e.Names(part1))
		}
		part1 = append(part1, ev)
	}
	first.Close()

	lastID := part1[len(part1)-1].ID
	second := u.On(1).Open(path, "Last-Event-ID", lastID)
	if second.Status != http.StatusOK {
		t.Fatalf("resume on replica 1: %d", second.Status)
	}
	part2 := second.Rest(30 * time.Second)
	all := append(append([]e2e.Event{}, part1...), part2...)
	// One attempt: ids run 1, 2, 3, ... across both replicas.
	for i, e := range all {
		if e.ID != strconv.Itoa(i+1) {
			t.Fatalf("event %d has id %s: ids %v", i, e.ID, ids(all))
		}
	}
	a := e2e.Collect(t, all)
	stored := u.Message(c.ID, sent.AssistantMessage.ID)
	if !a.HasEnd || a.Final.Status != events.StatusComplete || a.Text != longReply || stored.Content != longReply {
		t.Fatalf("resumed answer %q (final %+v), stored %q, want %q", a.Text, a.Final.Status, stored.Content, longReply)
	}

	// ?after=n (and Last-Event-ID) on either replica: exactly the events after n.
	for _, n := range []int{1, 4, len(all) - 1} {
		for replica := range 2 {
			es := u.On(replica).Open(path + "?after=" + strconv.Itoa(n))
			rest := es.Rest(10 * time.Second)
			es.Close()
			if diff := cmp.Diff(all[n:], rest); diff != "" {
				t.Errorf("?after=%d on replica %d (-want +got):\n%s", n, replica, diff)
			}
			es = u.On(replica).Open(path, "Last-Event-ID", strconv.Itoa(n))
			rest = es.Rest(10 * time.Second)
			es.Close()
			if diff := cmp.Diff(all[n:], rest); diff != "" {
				t.Errorf("Last-Event-ID %d on replica %d (-want +got):\n%s", n, replica, diff)
			}
		}
	}
	// After the final event there is nothing more: the stream just ends.
	es := u.On(1).Open(path, "Last-Event-ID", all[len(all)-1].ID)
	if rest := es.Rest(5 * time.Second); len(rest) != 0 {
		t.Errorf("after the final event: %v", e2e.Names(rest))
	}

	// A stream opened after the answer finished: the whole text as one delta, then done,
	// numbered so that a resume after the delta gets exactly the final event.
	fresh := u.On(1).Stream(sent.AssistantMessage.ID)
	n := len(all)
	want := []string{strconv.Itoa(n - 1), strconv.Itoa(n)}
	if diff := cmp.Diff([]string{"delta", "done"}, e2e.Names(fresh)); diff != "" || !cmp.Equal(want, ids(fresh)) {
		t.Fatalf("finished stream: %v ids %v, want delta, done with ids %v", e2e.Names(fresh), ids(fresh), want)
	}
	fa := e2e.Collect(t, fresh)
	if fa.Text != stored.Content {
		t.Errorf("finished stream text %q, stored %q", fa.Text, stored.Content)
	}
	if diff := cmp.Diff(stored, fa.Final, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Errorf("finished stream's message (-stored +streamed):\n%s", diff)
	}
	if diff := cmp.Diff(all[n-1:], u.On(0).Stream(sent.AssistantMessage.ID, "Last-Event-ID", fresh[0].ID)); diff != "" {
		t.Errorf("resume after the whole-text delta (-want +got):\n%s", diff)
	}

	// Bad resume points are refused.
	for _, bad := range []string{"-1", "x"} {
		if res, _ := u.Do("GET", path+"?after="+bad, nil); res.Status != http.StatusBadRequest || res.Code() != events.CodeInvalidInput {
			t.Errorf("?after=%s: %d %s", bad, res.Status, res.Body)
		}
	}
}

// testKeepAlive: comment lines come at the configured interval on both kinds of stream
// while nothing else happens.
func testKeepAlive(t *testing.T, s *e2e.Stack) {
	u := s.User("keepalive_bo").WithT(t)
	c := u.CreateChat("keepalive")
	s.HF.Enqueue("", fakehf.Step{Delay: 3 * time.Second})
	sent := u.Send(c.ID, "wait a little")
	for name, path := range map[string]string{
		"answer": "/api/messages/" + sent.AssistantMessage.ID + "/stream",
		"chat":   "/api/chats/" + c.ID + "/events",
	} {
		es := u.On(1).Open(path)
		start := time.Now()
		comments := 0
		for comments < 3 {
			ev, ok, ended := es.Next(5 * keepAlive)
			if !ok || ended {
				t.Fatalf("%s stream: no keepalive within %v (ended=%v)", name, 5*keepAlive, ended)
			}
			if ev.Comment == "keepalive" {
				comments++
			}
		}
		es.Close()
		if took := time.Since(start); took < 2*keepAlive {
			t.Errorf("%s stream: 3 keepalives in %v, faster than the interval %v", name, took, keepAlive)
		}
	}
	u.Stream(sent.AssistantMessage.ID)
}

func openStreams(t *testing.T, base string) (float64, error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	total := 0.0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "gateway_open_streams{") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
				return 0, err
			}
			total += v
		}
	}
	return total, sc.Err()
}

// testClientGone: open answer streams cost no JetStream consumer (each gateway replica
// has one subscription for every answer), and when clients go away the gateway's
// open-stream gauge goes back to where it was.
func testClientGone(t *testing.T, s *e2e.Stack) {
	u := s.User("gone_cy").WithT(t)
	c := u.CreateChat("gone")
	js := s.JetStream()
	base, err := e2e.GenerationConsumers(js)
	if err != nil {
		t.Fatal(err)
	}
	s.HF.Enqueue("", fakehf.Step{Delay: 4 * time.Second})
	sent := u.Send(c.ID, "slow one")
	var streams []*e2e.EventStream
	for i := range 4 {
		es := u.On(i % 2).Open("/api/messages/" + sent.AssistantMessage.ID + "/stream")
		if es.Status != http.StatusOK {
			t.Fatalf("open: %d", es.Status)
		}
		if _, ok, _ := es.Next(5 * time.Second); !ok { // a keepalive: the stream is open
			t.Fatal("no keepalive")
		}
		streams = append(streams, es)
	}
	if n, err := e2e.GenerationConsumers(js); err != nil || n != base {
		t.Errorf("%d consumers with four open streams (%v), want %d", n, err, base)
	}
	for _, url := range s.URLs {
		if n, err := openStreams(t, url); err != nil || n != 2 {
			t.Errorf("%s: %v open streams (%v), want 2", url, n, err)
		}
	}
	for _, es := range streams {
		es.Close()
	}
	for _, url := range s.URLs {
		e2e.Eventually(t, 3*time.Second, "open streams gauge", func() error {
			if n, err := openStreams(t, url); err != nil || n != 0 {
				return fmt.Errorf("%s: %v open streams (%v)", url, n, err)
			}
			return nil
		})
	}
	if n, err := e2e.GenerationConsumers(js); err != nil || n != base {
		t.Errorf("%d consumers after the streams closed (%v), want %d", n, err, base)
	}
	u.Stream(sent.AssistantMessage.ID)
}

// testChatEvents: a second device watching the chat sees the new messages, the
// finished answer and chat changes as they happen; another user's watcher sees none.
func testChatEvents(t *testing.T, s *e2e.Stack) {
	phone := s.User("live_dee").WithT(t)
	laptop := phone.On(1)
	other := s.User("live_eve").WithT(t)
	c := phone.CreateChat("live")
	otherChat := other.CreateChat("other")

	watch := laptop.Open("/api/chats/" + c.ID + "/events")
	if watch.Status != http.StatusOK {
		t.Fatalf("events: %d", watch.Status)
	}
	if res, _ := other.Do("GET", "/api/chats/"+c.ID+"/events", nil); res.Status != http.StatusNotFound {
		t.Fatalf("another user's chat events: %d", res.Status)
	}
	spy := other.Open("/api/chats/" + otherChat.ID + "/events")

	// Give the watcher's consumer a moment: it delivers only new events.
	time.Sleep(100 * time.Millisecond)
	sent := phone.Send(c.ID, "hello from my phone")
	phone.Stream(sent.AssistantMessage.ID)
	title := "renamed on the phone"
	phone.Call("PATCH", "/api/chats/"+c.ID, map[string]string{"title": title}, http.StatusOK, nil)

	got := watch.Until(10*time.Second, func(e e2e.Event) bool { return e.Event == "chat.updated" })
	if diff := cmp.Diff([]string{"message.created", "message.completed", "chat.updated"}, e2e.Names(got)); diff != "" {
		t.Fatalf("live events (-want +got):\n%s", diff)
	}
	var created events.MessageCreated
	e2e.MustJSON(t, got[0].Data, &created)
	if created.ChatID != c.ID || created.UserMessageID != sent.UserMessage.ID || created.AssistantMessageID != sent.AssistantMessage.ID {
		t.Errorf("message.created: %+v", created)
	}
	var completed events.MessageCompleted
	e2e.MustJSON(t, got[1].Data, &completed)
	if completed.Message.ID != sent.AssistantMessage.ID || completed.Message.Status != events.StatusComplete || completed.Message.Content == "" {
		t.Errorf("message.completed: %+v", completed)
	}
	var updated events.ChatUpdated
	e2e.MustJSON(t, got[2].Data, &updated)
	if updated.Chat.ID != c.ID || updated.Chat.Title != title {
		t.Errorf("chat.updated: %+v", updated)
	}

	// Reconnecting with Last-Event-ID replays what came after it, on any replica.
	again := phone.On(0).Open("/api/chats/"+c.ID+"/events", "Last-Event-ID", got[0].ID)
	replay := again.Until(10*time.Second, func(e e2e.Event) bool { return e.Event == "chat.updated" })
	if diff := cmp.Diff(got[1:], replay); diff != "" {
		t.Errorf("replayed events (-want +got):\n%s", diff)
	}
	if ev, ok, _ := spy.NextEvent(300 * time.Millisecond); ok {
		t.Errorf("another user's watcher saw %s %s", ev.Event, ev.Data)
	}
}

// testCancel: cancelling a streaming answer stops the provider call within a second
// and stores the text so far as cancelled.
func testCancel(t *testing.T, s *e2e.Stack) {
	u := s.User("cancel_fay").WithT(t)
	c := u.CreateChat("cancel")
	reply := strings.TrimSpace(strings.Repeat("word ", 200))
	s.HF.Enqueue("", fakehf.Step{Reply: reply})
	before := len(s.HF.Answers())
	sent := u.Send(c.ID, "talk for a long time")
	es := u.Open("/api/messages/" + sent.AssistantMessage.ID + "/stream")
	got := es.Until(10*time.Second, func(e e2e.Event) bool { return e.Event == events.GenDelta && e.ID == "3" })

	var rep events.MessageReply
	u.Call("POST", "/api/messages/"+sent.AssistantMessage.ID+"/cancel", nil, http.StatusAccepted, &rep)
	cancelled := time.Now()
	e2e.Eventually(t, time.Second, "provider call stopped", func() error {
		reqs := s.HF.Answers()
		if len(reqs) <= before {
			return fmt.Errorf("no provider request")
		}
		r := reqs[before]
		if !r.Finished || !r.Cancelled {
			return fmt.Errorf("provider request finished=%v cancelled=%v", r.Finished, r.Cancelled)
		}
		return nil
	})
	t.Logf("provider call stopped %v after the cancel", time.Since(cancelled).Round(time.Millisecond))

	got = append(got, es.Rest(10*time.Second)...)
	a := e2e.Collect(t, got)
	stored := u.Message(c.ID, sent.AssistantMessage.ID)
	if a.Final.Status != events.StatusCancelled || stored.Status != events.StatusCancelled {
		t.Fatalf("after cancel: streamed %s, stored %s (events %v)", a.Final.Status, stored.Status, e2e.Names(got))
	}
	if stored.Content == "" || !strings.HasPrefix(reply, stored.Content) || stored.Content == reply {
		t.Errorf("stored text %q is not a proper prefix of the answer", stored.Content)
	}
	if a.Text != stored.Content {
		t.Errorf("streamed text %q, stored %q", a.Text, stored.Content)
	}
	if res, _ := u.Do("POST", "/api/messages/"+sent.AssistantMessage.ID+"/cancel", nil); res.Status != http.StatusConflict || res.Code() != events.CodeNotRunning {
		t.Errorf("second cancel: %d %s", res.Status, res.Body)
	}

	// A cancelled answer frees the chat: the next message gets an answer.
	next := u.Send(c.ID, "short one this time")
	if a := e2e.Collect(t, u.Stream(next.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Errorf("next answer: %+v", a.Final)
	}
}

// testOneAtATime: while an answer is being written, sending or regenerating in the same
// chat is refused with 409 generation_in_progress; other chats are not affected.
func testOneAtATime(t *testing.T, s *e2e.Stack) {
	u := s.User("busy_gus").WithT(t)
	c := u.CreateChat("busy")
	s.HF.Enqueue("", fakehf.Step{Delay: 2 * time.Second})
	sent := u.Send(c.ID, "first")
	for name, try := range map[string]func() (e2e.Response, error){
		"send": func() (e2e.Response, error) {
			return u.Do("POST", "/api/chats/"+c.ID+"/messages", map[string]string{"content": "second"})
		},
		"regenerate": func() (e2e.Response, error) { return u.Do("POST", "/api/chats/"+c.ID+"/regenerate", nil) },
	} {
		res, err := try()
		if err != nil || res.Status != http.StatusConflict || res.Code() != events.CodeGenerationInProgress {
			t.Errorf("%s during an answer: %d %s %v", name, res.Status, res.Body, err)
		}
	}
	other := u.CreateChat("not busy")
	u.Send(other.ID, "in another chat")
	if a := e2e.Collect(t, u.Stream(sent.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Fatalf("first answer: %+v", a.Final)
	}
	if msgs := u.Messages(c.ID); len(msgs) != 2 {
		t.Errorf("chat holds %d messages, want 2", len(msgs))
	}
	u.Send(c.ID, "second, now that the first is done")
}

// testRegenerate: regenerate replaces the last answer with a new one.
func testRegenerate(t *testing.T, s *e2e.Stack) {
	u := s.User("regen_hal").WithT(t)
	c := u.CreateChat("regen")
	if res, _ := u.Do("POST", "/api/chats/"+c.ID+"/regenerate", nil); res.Status != http.StatusConflict && res.Status != http.StatusBadRequest {
		t.Errorf("regenerate an empty chat: %d %s", res.Status, res.Body)
	}
	sent := u.Send(c.ID, "what is two plus two")
	first := e2e.Collect(t, u.Stream(sent.AssistantMessage.ID))
	s.HF.Enqueue("", fakehf.Step{Reply: "four, definitely"})
	var rep events.RegenerateReply
	u.Call("POST", "/api/chats/"+c.ID+"/regenerate", nil, http.StatusAccepted, &rep)
	if rep.AssistantMessage.ID == "" || rep.AssistantMessage.ID == sent.AssistantMessage.ID || rep.AssistantMessage.Status != events.StatusPending {
		t.Fatalf("regenerate: %+v", rep.AssistantMessage)
	}
	second := e2e.Collect(t, u.On(1).Stream(rep.AssistantMessage.ID))
	if second.Final.Status != events.StatusComplete || second.Text != "four, definitely" || second.Text == first.Text {
		t.Fatalf("regenerated answer %q (%s), first %q", second.Text, second.Final.Status, first.Text)
	}
	msgs := u.Messages(c.ID)
	if len(msgs) != 2 || msgs[0].ID != sent.UserMessage.ID || msgs[1].ID != rep.AssistantMessage.ID || msgs[1].Content != second.Text {
		t.Fatalf("messages after regenerate: %+v", msgs)
	}
	if res, _ := u.Do("GET", "/api/messages/"+sent.AssistantMessage.ID+"/stream", nil); res.Status != http.StatusNotFound {
		t.Errorf("stream of the replaced answer: %d", res.Status)
	}
}

// testIdempotentSend: the same client_message_id sent again, one after the other or
// at the same time, makes one user message and one answer.
func testIdempotentSend(t *testing.T, s *e2e.Stack) {
	u := s.User("idem_ivy").WithT(t)
	send := func(c *e2e.Client, chatID, cmid, content string) (events.SendMessageReply, e2e.Response, error) {
		var rep events.SendMessageReply
		res, err := c.Do("POST", "/api/chats/"+chatID+"/messages", map[string]string{"content": content, "client_message_id": cmid})
		if err == nil && res.Status == http.StatusAccepted {
			err = jsonUnmarshal(res.Body, &rep)
		}
		return rep, res, err
	}
	countRequests := func(content string) int {
		n := 0
		for _, r := range s.HF.Answers() {
			if r.Chat.LastUser() == content {
				n++
			}
		}
		return n
	}

	t.Run("sequential", func(t *testing.T) {
		c := u.CreateChat("sequential")
		first, res, err := send(u, c.ID, "cmid-seq-1", "only once please")
		if err != nil || res.Status != http.StatusAccepted {
			t.Fatalf("first send: %d %s %v", res.Status, res.Body, err)
		}
		u.Stream(first.AssistantMessage.ID)
		for replica := range 2 {
			again, res, err := send(u.On(replica), c.ID, "cmid-seq-1", "only once please")
			if err != nil || res.Status != http.StatusAccepted {
				t.Fatalf("repeat on replica %d: %d %s %v", replica, res.Status, res.Body, err)
			}
			if again.UserMessage.ID != first.UserMessage.ID || again.AssistantMessage.ID != first.AssistantMessage.ID {
				t.Errorf("repeat on replica %d made new messages: %+v vs %+v", replica, again, first)
			}
		}
		if msgs := u.Messages(c.ID); len(msgs) != 2 {
			t.Errorf("%d messages, want 2", len(msgs))
		}
		if n := countRequests("only once please"); n != 1 {
			t.Errorf("the model was asked %d times", n)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		c := u.CreateChat("concurrent")
		const n = 6
		var wg sync.WaitGroup
		reps := make([]events.SendMessageReply, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				rep, res, err := send(u.On(i%2), c.ID, "cmid-conc-1", "at the same time")
				if err == nil && res.Status != http.StatusAccepted {
					err = fmt.Errorf("status %d: %s", res.Status, res.Body)
				}
				reps[i], errs[i] = rep, err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("send %d: %v", i, errs[i])
			}
			if reps[i].UserMessage.ID != reps[0].UserMessage.ID || reps[i].AssistantMessage.ID != reps[0].AssistantMessage.ID {
				t.Errorf("send %d got other messages: %+v vs %+v", i, reps[i], reps[0])
			}
		}
		u.Stream(reps[0].AssistantMessage.ID)
		if msgs := u.Messages(c.ID); len(msgs) != 2 {
			t.Errorf("%d messages, want 2", len(msgs))
		}
		if got := countRequests("at the same time"); got != 1 {
			t.Errorf("the model was asked %d times", got)
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
