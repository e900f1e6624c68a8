package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// TestAnswerLogsCarryRequestID: the answerer's log lines carry the request id of the
// context they are written for (through events.ContextHandler).
func TestAnswerLogsCarryRequestID(t *testing.T) {
	f := fakehf.New(fakehf.Options{})
	t.Cleanup(f.Close)
	a := newAnswerer(t, f, time.Second)
	var buf bytes.Buffer
	a.Log = slog.New(events.NewContextHandler(slog.NewJSONHandler(&buf, nil)))
	// A chat whose model is not configured: the default one answers, with a warning.
	ctx := events.WithRequestID(context.Background(), "req-123")
	out := a.Answer(ctx, app.Job{MessageID: "m1", Conversation: events.ConversationReply{Model: "no/such-model",
		Turns: []events.Turn{{Role: events.RoleUser, Content: "hello"}}}}, &sink{})
	if out.Status != events.StatusComplete {
		t.Fatalf("status %q, err %v", out.Status, out.Err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) == 0 || len(lines[0]) == 0 {
		t.Fatal("nothing logged")
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatalf("log line %s: %v", l, err)
		}
		if rec["request_id"] != "req-123" || rec["message_id"] != "m1" {
			t.Errorf("log line without the request id: %s", l)
		}
	}
}
