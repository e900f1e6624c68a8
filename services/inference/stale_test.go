package inference_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// A worker cut off from NATS for longer than the ack wait is presumed dead and another
// worker takes the answer over. When the first one comes back and finishes its own
// attempt, chat refuses its completion: the answer is the one clients saw streamed by
// the second attempt, and the first publishes no terminal event.
func TestStaleWorkerYieldsToTheNewAttempt(t *testing.T) {
	t.Parallel()
	e, p := newEnvProxiedWorker(t, 130*time.Millisecond)
	user := newID()
	c := e.newChat(user)
	question := strings.Repeat("word ", 30)
	sent := e.send(user, c.ID, question)
	var once sync.Once
	evs := e.generation(sent.AssistantMessage.ID, func(events.GenerationEvent) {
		once.Do(func() {
			// The first worker streams; now it loses NATS for longer than the ack wait
			// while its provider call goes on.
			p.Cut()
			e.startWorker()
			time.AfterFunc(3*time.Second, p.Restore)
		})
	})
	checkSeqs(t, evs)
	want := "You said: " + question + "(seen 1 messages)"
	last := evs[len(evs)-1]
	if last.Type != events.GenDone || last.Message.Status != events.StatusComplete || last.Message.Content != want {
		t.Fatalf("terminal event = %+v", last)
	}
	if got := text(evs); got != want {
		t.Errorf("client rebuilt %q, want %q", got, want)
	}
	stale := e.workers[0].reg
	waitFor(t, 20*time.Second, "the first worker to give its attempt up", func() bool {
		return metric(t, stale, "parley_inference_answers_total", map[string]string{"status": "superseded"}) == 1
	})
	if got := metric(t, stale, "parley_inference_answers_total", map[string]string{"status": events.StatusComplete}); got != 0 {
		t.Errorf("the stale worker stored %v answers, want 0", got)
	}
	if got := metric(t, e.workers[1].reg, "parley_inference_answers_total", map[string]string{"status": events.StatusComplete}); got != 1 {
		t.Errorf("the second worker finished %v answers, want 1", got)
	}
	// Nothing follows the terminal event: the stale worker published none of its own.
	time.Sleep(500 * time.Millisecond)
	again := e.generation(sent.AssistantMessage.ID, nil)
	if len(again) != len(evs) {
		t.Errorf("%d events on the subject after the answer finished, want %d", len(again), len(evs))
	}
	if m := e.stored(user, sent.AssistantMessage.ID); m.Content != want || m.Status != events.StatusComplete {
		t.Errorf("stored %+v", m)
	}
}
