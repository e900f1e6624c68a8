package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway/internal/sse"
)

// genFixture is a gateway edge whose "chat" owns messages of user u1 (message.get and
// message.send answer for them) and whose GENERATIONS stream is written by the test.
type genFixture struct {
	*fixture
	gets  atomic.Int64 // chat.v1.message.get requests
	owner map[string]string
}

func newGenFixture(t *testing.T) *genFixture {
	t.Helper()
	return newGenFixtureWith(t, Options{KeepAlive: 200 * time.Millisecond})
}

func newGenFixtureWith(t *testing.T, opts Options) *genFixture {
	t.Helper()
	f := &genFixture{fixture: newFixture(t, opts), owner: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.js.CreateOrUpdateStream(ctx, events.GenerationsStream(1)); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	h := func(m *nats.Msg) bool {
		switch m.Subject {
		case events.SubjectMessageGet:
			f.gets.Add(1)
			var ref events.MessageRef
			_ = json.Unmarshal(m.Data, &ref)
			if f.owner[ref.MessageID] != ref.UserID {
				return false // not_found is what chat says; "unavailable" tells it apart here
			}
			body, _ := json.Marshal(events.MessageReply{Message: events.Message{ID: ref.MessageID, Role: events.RoleAssistant, Status: events.StatusStreaming}})
			_ = m.Respond(body)
			return true
		case events.SubjectMessageSend:
			var req events.SendMessageRequest
			_ = json.Unmarshal(m.Data, &req)
			body, _ := json.Marshal(events.SendMessageReply{
				UserMessage:      events.Message{ID: "um-" + req.Content, Role: events.RoleUser, Status: events.StatusComplete},
				AssistantMessage: events.Message{ID: req.Content, Role: events.RoleAssistant, Status: events.StatusPending},
			})
			_ = m.Respond(body)
			return true
		}
		return false
	}
	f.chat.Store(&h)
	return f
}

// publish stores generation events of message id in JetStream.
func (f *genFixture) publish(id string, evs ...events.GenerationEvent) {
	f.t.Helper()
	for _, ev := range evs {
		body, _ := json.Marshal(ev)
		if _, err := f.js.Publish(context.Background(), events.SubjectGeneration(id), body); err != nil {
			f.t.Fatalf("publish: %v", err)
		}
	}
}

func delta(seq int64, text string) events.GenerationEvent {
	return events.GenerationEvent{Type: events.GenDelta, Seq: seq, Text: text}
}

func done(seq int64, id, content string) events.GenerationEvent {
	return events.GenerationEvent{Type: events.GenDone, Seq: seq,
		Message: &events.Message{ID: id, Role: events.RoleAssistant, Status: events.StatusComplete, Content: content}}
}

// sseEvent is one parsed event of a stream.
type sseEvent struct{ ID, Event, Data string }

// openStream opens path with a bearer token of user and returns the response.
func (f *genFixture) openStream(user, path string) *http.Response {
	f.t.Helper()
	c := goodClaims()
	c["sub"] = user
	// A stream that stops short fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	f.t.Cleanup(cancel)
	r, _ := http.NewRequestWithContext(ctx, "GET", f.http.URL+path, nil)
	r.Header.Set("Authorization", "Bearer "+f.token(c))
	res, err := f.http.Client().Do(r)
	if err != nil {
		f.t.Fatalf("open %s: %v", path, err)
	}
	f.t.Cleanup(func() { res.Body.Close() })
	return res
}

// readEvents reads events (skipping comments) until the stream ends or n are read.
func readEvents(res *http.Response, n int) []sseEvent {
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	var out []sseEvent
	var cur sseEvent
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.Data = line[6:]
		}
	}
	return out
}

func wantEvents(evs ...events.GenerationEvent) []sseEvent {
	var out []sseEvent
	for _, ev := range evs {
		rec := httptest.NewRecorder()
		sw, _ := sse.Start(rec, 0)
		_ = writeGeneration(sw, ev)
		got := readEvents(&http.Response{Body: httpBody(rec.Body.String())}, 1)
		out = append(out, got...)
	}
	return out
}

type stringBody struct{ *strings.Reader }

func (stringBody) Close() error { return nil }

func httpBody(s string) stringBody { return stringBody{strings.NewReader(s)} }

// TestAnswerStream: live events come from the replica's one subscription, earlier ones
// from JetStream, with no consumer left behind and no repeat.
func TestAnswerStream(t *testing.T) {
	f := newGenFixture(t)
	id := "msg-live"
	f.owner[id] = "u1"
	evs := []events.GenerationEvent{delta(1, "Hello"), delta(2, ", <world>"), delta(3, " \"quoted\"\n"),
		{Type: events.GenWaiting, Seq: 4, Reason: events.WaitRateLimited}, delta(5, "é ✓"), done(6, id, "all of it")}
	f.publish(id, evs[:3]...)

	res := f.openStream("u1", "/api/messages/"+id+"/stream?after=1")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("open: %d", res.StatusCode)
	}
	got := readEvents(res, 2)
	f.publish(id, evs[3:]...)
	got = append(got, readEvents(res, 10)...)
	if diff := cmp.Diff(wantEvents(evs[1:]...), got); diff != "" {
		t.Errorf("events after 1 (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	n := 0
	st, err := f.js.Stream(ctx, events.StreamGenerations)
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.ConsumerNames(ctx).Name() {
		n++
		t.Logf("consumer %s", name)
	}
	if n != 0 {
		t.Errorf("%d consumers left on %s", n, events.StreamGenerations)
	}
	waitFor(t, "stream forgotten", func() bool { return f.srv.hub.open() == 0 })

	// Another user's message: chat is asked and the stream is refused.
	if res := f.openStream("u2", "/api/messages/"+id+"/stream"); res.StatusCode == http.StatusOK {
		t.Errorf("another user's stream: %d", res.StatusCode)
	}
}

// TestAnswerStreamJustSent: an answer the user has just asked for through this replica
// streams without asking chat who owns it; another user opening it is still refused.
func TestAnswerStreamJustSent(t *testing.T) {
	f := newGenFixture(t)
	id := "msg-sent"
	c := goodClaims()
	tok := f.token(c)
	res := f.do(req{method: "POST", path: "/api/chats/chat1/messages", body: `{"content":"` + id + `"}`,
		headers: map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}})
	if res.status != http.StatusAccepted {
		t.Fatalf("send: %d %s", res.status, res.body)
	}
	gets := f.gets.Load()
	es := f.openStream("u1", "/api/messages/"+id+"/stream")
	if es.StatusCode != http.StatusOK {
		t.Fatalf("open: %d", es.StatusCode)
	}
	f.publish(id, delta(1, "hi"), done(2, id, "hi"))
	if got := readEvents(es, 5); len(got) != 2 || got[1].Event != events.GenDone {
		t.Errorf("events: %+v", got)
	}
	if n := f.gets.Load() - gets; n != 0 {
		t.Errorf("chat was asked %d times for the message", n)
	}
	// Not u2's: chat is asked (and, owning nothing of u2's, refuses).
	if res := f.openStream("u2", "/api/messages/"+id+"/stream"); res.StatusCode == http.StatusOK {
		t.Errorf("another user's stream of a just-sent answer: %d", res.StatusCode)
	}
	if n := f.gets.Load() - gets; n != 1 {
		t.Errorf("chat was asked %d times for another user's open", n)
	}
}

// TestAnswerStreamSlowClient: a client that does not read while many large events
// arrive makes the hub drop events for its stream; the stream catches up from
// JetStream and the client still gets every event once, in order.
func TestAnswerStreamSlowClient(t *testing.T) {
	f := newGenFixture(t)
	id := "msg-slow"
	f.owner[id] = "u1"
	es := f.openStream("u1", "/api/messages/"+id+"/stream")
	if es.StatusCode != http.StatusOK {
		t.Fatalf("open: %d", es.StatusCode)
	}
	const n = 200
	big := strings.Repeat("x", 64<<10)
	var evs []events.GenerationEvent
	for i := 1; i < n; i++ {
		evs = append(evs, delta(int64(i), strconv.Itoa(i)+big))
	}
	evs = append(evs, done(n, id, "the end"))
	f.publish(id, evs...)
	got := readEvents(es, n+1)
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.ID != strconv.Itoa(i+1) {
			t.Fatalf("event %d has id %s", i, e.ID)
		}
	}
	if got[n-1].Event != events.GenDone {
		t.Errorf("last event %s", got[n-1].Event)
	}
}

// TestRelayGap: a live event beyond the next expected one makes the stream read the
// missed ones from JetStream first; a final event under the seq just sent (a publisher
// that lost a race) still ends the answer.
func TestRelayGap(t *testing.T) {
	f := newGenFixture(t)
	id := "msg-gap"
	f.owner[id] = "u1"
	f.publish(id, delta(1, "a"), delta(2, "b"), delta(3, "c"))
	newRelay := func(rec *httptest.ResponseRecorder) *genRelay {
		sw, err := sse.Start(rec, 0)
		if err != nil {
			t.Fatal(err)
		}
		l := f.srv.hub.listen(id)
		t.Cleanup(func() { f.srv.hub.forget(l) })
		r := httptest.NewRequest("GET", "/", nil)
		return &genRelay{s: f.srv, r: r, sw: sw, l: l, userID: "u1", id: id}
	}
	rec := httptest.NewRecorder()
	g := newRelay(rec)
	body, _ := json.Marshal(delta(4, "d"))
	final, err := g.live(context.Background(), body)
	if final || err != nil {
		t.Fatalf("live: %v %v", final, err)
	}
	got := readEvents(&http.Response{Body: httpBody(rec.Body.String())}, 10)
	if diff := cmp.Diff(wantEvents(delta(1, "a"), delta(2, "b"), delta(3, "c"), delta(4, "d")), got); diff != "" {
		t.Errorf("after a gap (-want +got):\n%s", diff)
	}

	// seq 4 was sent; a final event with seq 4 still ends the stream, a delta does not.
	for _, tc := range []struct {
		ev    events.GenerationEvent
		final bool
		sent  int
	}{
		{delta(4, "other"), false, 0},
		{done(4, id, "abcd"), true, 1},
	} {
		rec := httptest.NewRecorder()
		g := newRelay(rec)
		g.last = 4
		body, _ := json.Marshal(tc.ev)
		final, err := g.live(context.Background(), body)
		if err != nil || final != tc.final {
			t.Errorf("%s 4 after 4: final %v err %v", tc.ev.Type, final, err)
		}
		if got := readEvents(&http.Response{Body: httpBody(rec.Body.String())}, 10); len(got) != tc.sent {
			t.Errorf("%s 4 after 4 sent %v", tc.ev.Type, got)
		}
	}
}

func TestCanonicalDelta(t *testing.T) {
	for _, tc := range []struct {
		in  string
		seq int64
		ok  bool
	}{
		{`{"type":"delta","seq":7,"text":"hi"}`, 7, true},
		{`{"type":"delta","seq":12,"text":"a \"b\" \\ \n \u003c"}`, 12, true},
		{`{"type":"delta","seq":7,"text":"hi","reason":"x"}`, 0, false},
		{`{"type":"delta","seq":7,"text":"hi"} `, 0, false},
		{`{"type":"delta","seq":7,"text":"hi\"}`, 0, false},
		{`{"type":"delta","seq":-1,"text":"hi"}`, 0, false},
		{`{"type":"delta","seq":7}`, 0, false},
		{`{"type":"done","seq":7,"text":"hi"}`, 0, false},
		{"{\"type\":\"delta\",\"seq\":7,\"text\":\"\xff\"}", 0, false},
		{"{\"type\":\"delta\",\"seq\":7,\"text\":\"a\nb\"}", 0, false},
	} {
		seq, ok := canonicalDelta([]byte(tc.in))
		if seq != tc.seq || ok != tc.ok {
			t.Errorf("canonicalDelta(%s) = %d, %v, want %d, %v", tc.in, seq, ok, tc.seq, tc.ok)
		}
		if !ok {
			continue
		}
		// The fast form is what decoding and re-encoding would give.
		var ev events.GenerationEvent
		if err := json.Unmarshal([]byte(tc.in), &ev); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(deltaData{Seq: ev.Seq, Text: ev.Text})
		if got := "{" + tc.in[len(deltaPrefix):]; got != string(want) {
			t.Errorf("fast data %s, want %s", got, want)
		}
	}
}

func TestSentAnswers(t *testing.T) {
	s := newSentAnswers()
	s.add("u1", events.Message{ID: "m1", Status: events.StatusPending})
	s.add("u1", events.Message{ID: "m2", Status: events.StatusComplete})
	if _, ok := s.lookup("u1", "m1"); !ok {
		t.Error("m1 not known for u1")
	}
	if _, ok := s.lookup("u2", "m1"); ok {
		t.Error("m1 known for u2")
	}
	if _, ok := s.lookup("u1", "m2"); ok {
		t.Error("a finished answer is kept")
	}
	s.mu.Lock()
	a := s.m["m1"]
	a.at = time.Now().Add(-sentTTL)
	s.m["m1"] = a
	s.mu.Unlock()
	if _, ok := s.lookup("u1", "m1"); ok {
		t.Error("expired entry still known")
	}
	for i := range sentMax + 10 {
		s.add("u1", events.Message{ID: fmt.Sprint("x", i), Status: events.StatusPending})
	}
	if n := len(s.m); n > sentMax {
		t.Errorf("%d entries, at most %d", n, sentMax)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSendTimeout: a send waits for chat longer than other chat calls (SendTimeout,
// not ChatTimeout, which is 1 s here): chat answering late under a burst is a 202,
// not a 504 for a message chat stored anyway.
func TestSendTimeout(t *testing.T) {
	f := newGenFixture(t)
	h := func(m *nats.Msg) bool {
		if m.Subject != events.SubjectMessageSend {
			return false
		}
		go func() {
			time.Sleep(1500 * time.Millisecond)
			body, _ := json.Marshal(events.SendMessageReply{AssistantMessage: events.Message{ID: "late", Status: events.StatusPending}})
			_ = m.Respond(body)
		}()
		return true
	}
	f.chat.Store(&h)
	res := f.do(req{method: "POST", path: "/api/chats/chat1/messages", body: `{"content":"hello"}`,
		headers: map[string]string{"Authorization": "Bearer " + f.token(goodClaims()), "Content-Type": "application/json"}})
	if res.status != http.StatusAccepted {
		t.Errorf("late send: %d %s", res.status, res.body)
	}
}
