package e2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// WaitWorkersPulling waits until `workers` workers pull from the inference durable
// consumer (each is set up and ready for events).
func (s *Stack) WaitWorkersPulling(js jetstream.JetStream, workers int) {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Eventually(s.T, 30*time.Second, "workers pulling", func() error {
		cons, err := js.Consumer(ctx, events.StreamChatEvents, events.ConsumerInference)
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting < workers {
			return fmt.Errorf("%d pull requests waiting, want %d", info.NumWaiting, workers)
		}
		return nil
	})
}

// GenerationConsumers counts the consumers on GENERATIONS (the gateway's stream
// readers; nothing else consumes it).
func GenerationConsumers(js jetstream.JetStream) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamGenerations)
	if err != nil {
		return 0, err
	}
	n := 0
	names := st.ConsumerNames(ctx)
	for range names.Name() {
		n++
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return 0, err
	}
	return n, nil
}
