package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// Notifier publishes generation events and cancel broadcasts (app.Notifier).
type Notifier struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// NewNotifier returns a Notifier.
func NewNotifier(nc *nats.Conn, js jetstream.JetStream) *Notifier {
	return &Notifier{nc: nc, js: js}
}

// publishTimeout bounds one generation event publish, so that a NATS outage cannot
// eat the budget of the request (or reaper round) that stored the answer.
const publishTimeout = 3 * time.Second

// errDisconnected is returned instead of publishing into the reconnect buffer.
var errDisconnected = errors.New("nats is not connected")

// PublishGeneration implements app.Notifier with seq = last seq on the subject + 1.
// The stored message is the truth; a lost event only delays what a client sees until
// it reads the message.
func (n *Notifier) PublishGeneration(ctx context.Context, messageID string, ev events.GenerationEvent) error {
	if !n.nc.IsConnected() {
		return errDisconnected
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err := events.PublishGenerationEvent(ctx, n.js, messageID, ev)
	return err
}

// BroadcastCancel implements app.Notifier on the core NATS subject of the message.
func (n *Notifier) BroadcastCancel(_ context.Context, messageID string) error {
	body, err := json.Marshal(events.MessageRef{MessageID: messageID})
	if err != nil {
		return fmt.Errorf("encode cancel: %w", err)
	}
	if err := n.nc.Publish(events.SubjectCancel(messageID), body); err != nil {
		return fmt.Errorf("publish cancel of %s: %w", messageID, err)
	}
	return nil
}
