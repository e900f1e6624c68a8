package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// HeaderJobState is the NATS header, on every generation event a worker publishes,
// that carries the answer's jobState to whichever worker takes the next delivery. It
// is not part of the event payload: clients never see it.
const HeaderJobState = "Parley-Job"

// jobState is what earlier deliveries of an answer leave for the next one. JetStream
// counts every delivery, including the ones a worker hands back on purpose (a long
// provider wait, a model at its concurrency limit); those are counted in Free so that
// they do not use up INFERENCE_MAX_DELIVER: the counted deliveries are
// NumDelivered - Free.
type jobState struct {
	// Free counts deliveries handed back on purpose.
	Free int `json:"free,omitempty"`
	// Attempts counts provider calls so far.
	Attempts int `json:"attempts,omitempty"`
	// RetrySince is when the retry budget (INFERENCE_RETRY_MAX_WAIT) started: the
	// first provider failure.
	RetrySince time.Time `json:"retry_since,omitzero"`
	// Dirty says text was streamed since the last reset: the next attempt starts with
	// a reset.
	Dirty bool `json:"dirty,omitempty"`
	// Parked marks the waiting event of a hand-back: no worker holds the answer until
	// JetStream delivers it again, so a cancel must be handled by whoever hears it.
	Parked bool `json:"parked,omitempty"`
}

// encode is the header's value.
func (s jobState) encode() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// lastEvent is the newest event on a generation subject.
type lastEvent struct {
	ok        bool
	ev        events.GenerationEvent
	streamSeq uint64
	// state is nil when the event carries none (published by chat, or none yet).
	state *jobState
}

func (l lastEvent) terminal() bool {
	return l.ok && (l.ev.Type == events.GenDone || l.ev.Type == events.GenError)
}

// readLast reads the newest event of a message's generation subject with its state.
func readLast(ctx context.Context, stream jetstream.Stream, messageID string) (lastEvent, error) {
	raw, err := stream.GetLastMsgForSubject(ctx, events.SubjectGeneration(messageID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return lastEvent{}, nil
	}
	if err != nil {
		return lastEvent{}, fmt.Errorf("read last generation event of %s: %w", messageID, err)
	}
	out := lastEvent{ok: true, streamSeq: raw.Sequence}
	if err := json.Unmarshal(raw.Data, &out.ev); err != nil {
		return lastEvent{}, fmt.Errorf("decode last generation event of %s: %w", messageID, err)
	}
	if h := raw.Header.Get(HeaderJobState); h != "" {
		var st jobState
		if json.Unmarshal([]byte(h), &st) == nil {
			out.state = &st
		}
	}
	return out, nil
}

// errAlreadyTerminal says the subject already ends with a terminal event.
var errAlreadyTerminal = errors.New("generation already finished")

// publishCAS publishes ev with state after the subject's newest event, with
// Seq = its Seq + 1, as a compare-and-set on the subject's last stream sequence (like
// events.PublishGenerationEvent, plus the state header). It never publishes after a
// terminal event: it returns errAlreadyTerminal then.
func publishCAS(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, messageID string,
	ev events.GenerationEvent, st jobState) (events.GenerationEvent, error) {
	ev, _, err := publishCASSeq(ctx, js, stream, messageID, ev, st)
	return ev, err
}

// publishCASSeq is publishCAS that also returns the event's stream sequence.
func publishCASSeq(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, messageID string,
	ev events.GenerationEvent, st jobState) (events.GenerationEvent, uint64, error) {
	subject := events.SubjectGeneration(messageID)
	for range 5 {
		last, err := readLast(ctx, stream, messageID)
		if err != nil {
			return events.GenerationEvent{}, 0, err
		}
		if last.terminal() {
			return last.ev, 0, errAlreadyTerminal
		}
		ev.Seq = 1
		if last.ok {
			ev.Seq = last.ev.Seq + 1
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return events.GenerationEvent{}, 0, fmt.Errorf("encode generation event: %w", err)
		}
		seq, err := publishGen(ctx, js.Conn(), subject, body, st.encode(), last.streamSeq)
		if err == nil {
			return ev, seq, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence &&
			apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return events.GenerationEvent{}, 0, fmt.Errorf("publish %s event on %s: %w", ev.Type, subject, err)
		}
	}
	return events.GenerationEvent{}, 0, fmt.Errorf("publish %s event on %s: %w", ev.Type, subject, events.ErrGenerationSeqConflict)
}
