package inference_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference"
)

// TestOnePullServesSeveralEvents: a worker with free slots asks JetStream for as many
// events as it has free slots, so events arriving together come through the pull that
// is already open, not one pull request (and reply subscription) each.
func TestOnePullServesSeveralEvents(t *testing.T) {
	t.Parallel()
	const n = 6
	e := newEnvWith(t, envOptions{hf: true, fake: fakehf.Options{FirstTokenDelay: 3 * time.Second},
		cfg: func(c *inference.Config) { c.Concurrency = n }})
	var pulls atomic.Int64
	sub, err := e.nc.Subscribe("$JS.API.CONSUMER.MSG.NEXT."+events.StreamChatEvents+"."+events.ConsumerInference,
		func(*nats.Msg) { pulls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The worker's pull for its free slots is open by now.
	time.Sleep(300 * time.Millisecond)
	users := make([]string, n)
	chats := make([]string, n)
	for i := range n {
		users[i] = newID()
		chats[i] = e.newChat(users[i]).ID
	}
	before := pulls.Load()
	for i := range n {
		e.send(users[i], chats[i], "question")
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(e.answerRequests()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answers started", len(e.answerRequests()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One pull per event would be n-1 new pulls; the open pull (renewed at most once
	// on its 5 s expiry while the events arrive) serves them all.
	if got := pulls.Load() - before; got > 2 {
		t.Errorf("%d pull requests for %d events arriving together, want at most 2", got, n)
	}
}
