package chat_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// events.PublishGenerationEvent, shared with inference: concurrent publishers on one
// subject get consecutive, distinct seqs and nothing is lost.
func TestPublishGenerationEventSeqs(t *testing.T) {
	e := newEnv(t) // chat creates GENERATIONS
	id := newUser()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "GENERATIONS", func() bool { _, err := e.js.Stream(ctx, events.StreamGenerations); return err == nil })
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = events.PublishGenerationEvent(ctx, e.js, id, events.GenerationEvent{Type: events.GenDelta, Text: "x"})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	s := must(e.js.Stream(ctx, events.StreamGenerations))(t)
	c := must(s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectGeneration(id)}}))(t)
	batch := must(c.Fetch(n, jetstream.FetchMaxWait(5*time.Second)))(t)
	var seqs []int64
	for m := range batch.Messages() {
		var ev events.GenerationEvent
		mustUnmarshal(t, m.Data(), &ev)
		seqs = append(seqs, ev.Seq)
	}
	if !slices.Equal(seqs, []int64{1, 2, 3, 4}) {
		t.Errorf("seqs = %v, want 1..4", seqs)
	}
}
