package transport

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

func TestParsePubAck(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
		code    jetstream.ErrorCode
	}{
		{name: "usual", in: `{"stream":"GENERATIONS","seq":1}`, want: 1},
		{name: "large", in: `{"stream":"GENERATIONS","seq":18446744073709551615}`, want: 18446744073709551615},
		{name: "domain", in: `{"stream":"GENERATIONS","domain":"hub","seq":42}`, want: 42},
		{name: "duplicate", in: `{"stream":"GENERATIONS","seq":7,"duplicate":true}`, want: 7},
		{name: "spaces", in: `{ "stream": "GENERATIONS", "seq": 9 }`, want: 9},
		{name: "leading zero", in: `{"stream":"GENERATIONS","seq":007}`, wantErr: true},
		{name: "other stream", in: `{"stream":"OTHER","seq":5}`, want: 5},
		{name: "no stream", in: `{"seq":5}`, wantErr: true},
		{name: "not json", in: `{"stream":"GENERATIONS","seq":5`, wantErr: true},
		{name: "wrong last sequence", wantErr: true, code: jetstream.JSErrCodeStreamWrongLastSequence,
			in: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"GENERATIONS","seq":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePubAck([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePubAck(%s) = %d, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("parsePubAck(%s) = %d, want %d", tt.in, got, tt.want)
			}
			if tt.code != 0 {
				var apiErr *jetstream.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode != tt.code {
					t.Errorf("parsePubAck(%s) error %v, want API error %d", tt.in, err, tt.code)
				}
			}
		})
	}
}

// TestPublishGenCompareAndSet checks the fast publish against a real server: the
// sequence it returns is the stored one, and a publish after a stale sequence is
// refused with the error the callers look for.
func TestPublishGenCompareAndSet(t *testing.T) {
	js, stream := genStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subject := events.SubjectGeneration("m1")
	// Something else on the stream first, so stream and subject sequences differ.
	if _, err := publishGen(ctx, js.Conn(), events.SubjectGeneration("other"), []byte(`{}`), "", 0); err != nil {
		t.Fatalf("publish other: %v", err)
	}
	first, err := publishGen(ctx, js.Conn(), subject, []byte(`{"type":"delta","seq":1,"text":"a"}`), `{"dirty":true}`, 0)
	if err != nil {
		t.Fatalf("first publish: %v", err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if raw.Sequence != first || raw.Header.Get(HeaderJobState) != `{"dirty":true}` {
		t.Errorf("stored seq %d header %q, publish returned %d", raw.Sequence, raw.Header.Get(HeaderJobState), first)
	}
	// A stale expectation (0: "the subject is empty") is refused.
	_, err = publishGen(ctx, js.Conn(), subject, []byte(`{"type":"delta","seq":2,"text":"b"}`), "", 0)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence &&
		apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		t.Fatalf("stale publish error = %v, want wrong last sequence", err)
	}
	// The server's usual acknowledgement takes the fast path (no encoding/json).
	resp, err := js.Conn().RequestWithContext(ctx, events.SubjectGeneration("m2"), []byte(`{}`))
	if err != nil {
		t.Fatalf("raw publish: %v", err)
	}
	if _, ok := bytes.CutPrefix(resp.Data, pubAckPrefix); !ok {
		t.Errorf("acknowledgement %s does not start with %s", resp.Data, pubAckPrefix)
	} else if _, ok := digitsThenBrace(resp.Data[len(pubAckPrefix):]); !ok {
		t.Errorf("acknowledgement %s is not read by the fast path", resp.Data)
	}
	second, err := publishGen(ctx, js.Conn(), subject, []byte(`{"type":"delta","seq":2,"text":"b"}`), "", first)
	if err != nil || second != first+2 {
		t.Fatalf("second publish = %d, %v; want %d", second, err, first+2)
	}
}
