package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// maxGenerationPublishAttempts bounds the compare-and-set retries of
// PublishGenerationEvent when another publisher wins the race for a sequence number.
const maxGenerationPublishAttempts = 5

// ErrGenerationSeqConflict is returned by PublishGenerationEvent when other publishers
// kept taking the next sequence number of the subject.
var ErrGenerationSeqConflict = errors.New("generation event: sequence kept changing")

// LastGenerationEvent returns the last event published on a message's generation
// subject and its stream sequence; ok is false when the subject holds no event yet.
func LastGenerationEvent(ctx context.Context, js jetstream.JetStream, messageID string) (ev GenerationEvent, streamSeq uint64, ok bool, err error) {
	stream, err := js.Stream(ctx, StreamGenerations)
	if err != nil {
		return GenerationEvent{}, 0, false, fmt.Errorf("look up stream %s: %w", StreamGenerations, err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, SubjectGeneration(messageID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return GenerationEvent{}, 0, false, nil
	}
	if err != nil {
		return GenerationEvent{}, 0, false, fmt.Errorf("read last generation event of %s: %w", messageID, err)
	}
	if err := json.Unmarshal(raw.Data, &ev); err != nil {
		return GenerationEvent{}, 0, false, fmt.Errorf("decode last generation event of %s: %w", messageID, err)
	}
	return ev, raw.Sequence, true, nil
}

// PublishGenerationEvent publishes ev on the generation subject of messageID with
// Seq = the last Seq on that subject + 1 (1 for the first event), and returns the event
// as published. The publish is a compare-and-set on the subject's last stream sequence
// (Nats-Expected-Last-Subject-Sequence), so two publishers (a worker and chat's cancel
// or reaper) never publish the same Seq twice: the loser re-reads and retries.
func PublishGenerationEvent(ctx context.Context, js jetstream.JetStream, messageID string, ev GenerationEvent) (GenerationEvent, error) {
	subject := SubjectGeneration(messageID)
	for range maxGenerationPublishAttempts {
		last, streamSeq, ok, err := LastGenerationEvent(ctx, js, messageID)
		if err != nil {
			return GenerationEvent{}, err
		}
		ev.Seq = 1
		if ok {
			ev.Seq = last.Seq + 1
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return GenerationEvent{}, fmt.Errorf("encode generation event: %w", err)
		}
		// No Nats-Msg-Id: de-duplication would silently swallow a competing publisher's
		// event with the same Seq; the compare-and-set makes it fail and retry instead.
		_, err = js.Publish(ctx, subject, body,
			jetstream.WithExpectStream(StreamGenerations),
			jetstream.WithExpectLastSequencePerSubject(streamSeq))
		if err == nil {
			return ev, nil
		}
		if !isWrongLastSequence(err) {
			return GenerationEvent{}, fmt.Errorf("publish %s event on %s: %w", ev.Type, subject, err)
		}
	}
	return GenerationEvent{}, fmt.Errorf("publish %s event on %s: %w", ev.Type, subject, ErrGenerationSeqConflict)
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
