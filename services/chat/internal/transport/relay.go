package transport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat/internal/store"
)

// Relay tuning.
const (
	relayPoll = 200 * time.Millisecond
	// relayGrace is how old an unpublished row must be before a poll takes it: younger
	// ones are published straight after their commit by the process that wrote them
	// (Store.TakeFresh), and the poll is for what that missed (NATS away, a crash).
	relayGrace      = 2 * time.Second
	relayBatch      = 100
	relayPublishTTL = 3 * time.Second
	relayRetryDelay = time.Second
	outboxKeep      = 7 * 24 * time.Hour
	outboxPurgeFreq = 10 * time.Minute
)

// OutboxStore is what the relay needs from the store.
type OutboxStore interface {
	RelayOutbox(ctx context.Context, limit int, retryDelay time.Duration, committedBefore time.Time,
		publish func([]store.OutboxRow) (published, failed []string)) (int, error)
	TakeFresh() []store.OutboxRow
	MarkPublished(ctx context.Context, ids []string) error
	PurgeOutbox(ctx context.Context, before time.Time, limit int) (int64, error)
	Wake() <-chan struct{}
}

// Relay publishes outbox rows to JetStream with Nats-Msg-Id = event id and marks them
// published only after the PubAck. Rows this process commits are published right after
// their commit (fresh); a poll takes every row older than Grace still unpublished, from
// any replica. Rows stay in the outbox while NATS is down and are published when it is
// back; a crash between the PubAck and the mark re-publishes a row, which the stream's
// duplicate window (and idempotent consumers) absorb.
type Relay struct {
	store        OutboxStore
	nc           *nats.Conn
	js           jetstream.JetStream
	log          *slog.Logger
	streamsReady bool
	// Replicas is the replica count of the streams it creates (NATS_STREAM_REPLICAS).
	Replicas int
	// Grace is how old an unpublished row must be before a poll takes it [relayGrace].
	Grace time.Duration
}

// NewRelay returns a relay.
func NewRelay(st OutboxStore, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) *Relay {
	return &Relay{store: st, nc: nc, js: js, log: log, Grace: relayGrace}
}

// Run publishes until ctx ends: the rows of each commit right after it, and at every
// poll the rows that were missed.
func (r *Relay) Run(ctx context.Context) error {
	tick := time.NewTicker(relayPoll)
	defer tick.Stop()
	lastPurge := time.Now()
	r.drain(ctx) // creates the streams if need be, and publishes what a stop left behind
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.drain(ctx)
		case <-r.store.Wake():
			r.publishFresh(ctx)
		}
		if time.Since(lastPurge) > outboxPurgeFreq {
			lastPurge = time.Now()
			if n, err := r.store.PurgeOutbox(ctx, time.Now().Add(-outboxKeep), 10000); err != nil {
				r.log.Warn("outbox purge failed", "err", err)
			} else if n > 0 {
				r.log.Info("outbox purged", "rows", n)
			}
		}
	}
}

// publishFresh publishes the rows committed since the last call and marks the ones
// acknowledged; the others are left to a poll.
func (r *Relay) publishFresh(ctx context.Context) {
	rows := r.store.TakeFresh()
	if len(rows) == 0 || !r.ready(ctx) {
		return
	}
	published, _ := r.publish(ctx, rows)
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), relayPublishTTL)
	defer cancel()
	if err := r.store.MarkPublished(mctx, published); err != nil {
		// They are published; a poll publishes them again, de-duplicated by id.
		r.log.Warn("mark outbox rows published", "rows", len(published), "err", err)
	}
}

// ready reports whether publishing can be tried: NATS is connected and the streams
// exist (created here when they were not).
func (r *Relay) ready(ctx context.Context) bool {
	if !r.nc.IsConnected() {
		return false // rows wait; publishing into the reconnect buffer would only time out
	}
	if !r.streamsReady {
		sctx, cancel := context.WithTimeout(ctx, relayPublishTTL)
		err := r.EnsureStreams(sctx)
		cancel()
		if err != nil {
			r.log.Warn("create streams failed", "err", err)
			return false
		}
	}
	return true
}

// EnsureStreams creates or updates CHAT_EVENTS and GENERATIONS.
func (r *Relay) EnsureStreams(ctx context.Context) error {
	for _, cfg := range []jetstream.StreamConfig{events.ChatEventsStream(r.Replicas), events.GenerationsStream(r.Replicas)} {
		if _, err := r.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return err
		}
	}
	r.streamsReady = true
	return nil
}

// drain publishes batches of rows older than the grace until a batch is not full or a
// publish fails.
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		if !r.ready(ctx) {
			return
		}
		allPublished := true
		before := time.Now().Add(-r.Grace)
		n, err := r.store.RelayOutbox(ctx, relayBatch, relayRetryDelay, before, func(rows []store.OutboxRow) (published, failed []string) {
			published, failed = r.publish(ctx, rows)
			allPublished = len(failed) == 0
			return published, failed
		})
		if err != nil {
			r.log.Warn("publish outbox rows failed", "err", err)
			return
		}
		if n < relayBatch || !allPublished {
			return
		}
	}
}

// publish sends rows in order, all at once (asynchronous publishes, then a wait for
// their PubAcks): one round trip per batch instead of one per row, which under load
// bounded the outbox to about a hundred events a second (docs/benchmarks.md). It stops
// at the first failure and returns the ids acknowledged and the ids to retry; a row
// after a failed one may have been stored too, and its retry is de-duplicated by its
// Nats-Msg-Id.
func (r *Relay) publish(ctx context.Context, rows []store.OutboxRow) (published, failed []string) {
	acks := make([]jetstream.PubAckFuture, 0, len(rows))
	for _, row := range rows {
		ack, err := r.js.PublishMsgAsync(&nats.Msg{Subject: row.Subject, Data: row.Payload},
			jetstream.WithMsgID(row.ID), jetstream.WithExpectStream(events.StreamChatEvents))
		if err != nil {
			r.log.Warn("publish outbox event failed", "event_id", row.ID, "subject", row.Subject, "err", err)
			break
		}
		acks = append(acks, ack)
	}
	timeout := time.NewTimer(relayPublishTTL)
	defer timeout.Stop()
	for i, ack := range acks {
		var err error
		select {
		case <-ack.Ok():
		case err = <-ack.Err():
		case <-timeout.C:
			err = context.DeadlineExceeded
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) ||
				errors.Is(err, nats.ErrNoResponders) {
				r.streamsReady = false
			}
			r.log.Warn("publish outbox event failed", "event_id", rows[i].ID, "subject", rows[i].Subject, "err", err)
			break
		}
		published = append(published, rows[i].ID)
	}
	for _, rest := range rows[len(published):] {
		failed = append(failed, rest.ID)
	}
	return published, failed
}
