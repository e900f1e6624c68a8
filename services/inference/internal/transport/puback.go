package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// publishGen publishes one generation event to GENERATIONS right after the subject's
// stream sequence after (compare-and-set: the server refuses it when anything else was
// stored on the subject since) with the job-state header value, and returns its
// stream sequence. It is jetstream.PublishMsg with WithExpectStream and
// WithExpectLastSequencePerSubject, minus the generic machinery: the usual
// acknowledgement is read without encoding/json (anything else is decoded as
// nats.go does, so errors are the same *jetstream.APIError values).
func publishGen(ctx context.Context, nc *nats.Conn, subject string, body []byte, jobHeader string, after uint64) (uint64, error) {
	h := nats.Header{
		jetstream.ExpectedStreamHeader:      []string{events.StreamGenerations},
		jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(after, 10)},
	}
	if jobHeader != "" {
		h[HeaderJobState] = []string{jobHeader}
	}
	resp, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: body, Header: h})
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, jetstream.ErrNoStreamResponse
		}
		return 0, err
	}
	return parsePubAck(resp.Data)
}

// pubAckPrefix starts the acknowledgement of a message stored in GENERATIONS, as the
// server writes it: {"stream":"GENERATIONS","seq":123}.
var pubAckPrefix = []byte(`{"stream":"` + events.StreamGenerations + `","seq":`)

// parsePubAck reads a JetStream publish acknowledgement: the stored message's stream
// sequence, or the server's error.
func parsePubAck(data []byte) (uint64, error) {
	if rest, ok := bytes.CutPrefix(data, pubAckPrefix); ok {
		if seq, ok := digitsThenBrace(rest); ok {
			return seq, nil
		}
	}
	var ack struct {
		Error    *jetstream.APIError `json:"error"`
		Stream   string              `json:"stream"`
		Sequence uint64              `json:"seq"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return 0, fmt.Errorf("nats: %w", ack.Error)
	}
	if ack.Stream == "" {
		return 0, jetstream.ErrInvalidJSAck
	}
	return ack.Sequence, nil
}

// digitsThenBrace reads b = "<decimal sequence>}" (a positive number that fits in
// 19 digits, no leading zero); ok is false for anything else.
func digitsThenBrace(b []byte) (uint64, bool) {
	n := len(b) - 1
	if n < 1 || n > 19 || b[n] != '}' || b[0] == '0' {
		return 0, false
	}
	var v uint64
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
