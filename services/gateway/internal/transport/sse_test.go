package transport

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway/internal/sse"
)

func TestSendStored(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	done := events.Message{ID: "m1", ChatID: "c1", Role: "assistant", Content: "Hello there", Status: events.StatusComplete, CreatedAt: at}
	failed := events.Message{ID: "m1", ChatID: "c1", Role: "assistant", Status: events.StatusFailed, CreatedAt: at,
		Error: &events.Error{Code: events.CodeProviderAuth, Message: "The model provider refused our credentials."}}
	msgJSON := `{"id":"m1","chat_id":"c1","role":"assistant","content":"Hello there","status":"complete","created_at":"2026-01-02T03:04:05Z"}`
	failJSON := `{"id":"m1","chat_id":"c1","role":"assistant","content":"","status":"failed","created_at":"2026-01-02T03:04:05Z","error":{"code":"provider_auth","message":"The model provider refused our credentials."}}`

	tests := []struct {
		name  string
		msg   events.Message
		after int64
		want  string
	}{
		{"fresh", done, 0,
			"id: 1\nevent: delta\ndata: {\"seq\":1,\"text\":\"Hello there\"}\n\n" +
				"id: 2\nevent: done\ndata: {\"message\":" + msgJSON + "}\n\n"},
		{"resumed", done, 4,
			"id: 5\nevent: reset\ndata: {\"seq\":5}\n\n" +
				"id: 6\nevent: delta\ndata: {\"seq\":6,\"text\":\"Hello there\"}\n\n" +
				"id: 7\nevent: done\ndata: {\"message\":" + msgJSON + "}\n\n"},
		{"failed", failed, 0,
			"id: 1\nevent: error\ndata: {\"error\":{\"code\":\"provider_auth\",\"message\":\"The model provider refused our credentials.\"},\"message\":" + failJSON + "}\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			sw, err := sse.Start(w, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := sendStored(sw, tt.msg, tt.after); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, w.Body.String()); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteGeneration(t *testing.T) {
	retry := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		ev   events.GenerationEvent
		want string
	}{
		{events.GenerationEvent{Type: events.GenDelta, Seq: 1, Text: "Hi"}, "id: 1\nevent: delta\ndata: {\"seq\":1,\"text\":\"Hi\"}\n\n"},
		{events.GenerationEvent{Type: events.GenReset, Seq: 2}, "id: 2\nevent: reset\ndata: {\"seq\":2}\n\n"},
		{events.GenerationEvent{Type: events.GenWaiting, Seq: 3, Reason: events.WaitRateLimited, RetryAt: &retry},
			"id: 3\nevent: waiting\ndata: {\"reason\":\"rate_limited\",\"retry_at\":\"2026-01-02T03:04:05Z\"}\n\n"},
		{events.GenerationEvent{Type: events.GenWaiting, Seq: 4, Reason: events.WaitQueued}, "id: 4\nevent: waiting\ndata: {\"reason\":\"queued\"}\n\n"},
		{events.GenerationEvent{Type: "future-type", Seq: 5}, ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		sw, _ := sse.Start(w, 0)
		if err := writeGeneration(sw, tt.ev); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, w.Body.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.ev.Type, diff)
		}
	}
}

func TestChatEventFilter(t *testing.T) {
	env := func(typ, data string) []byte {
		return []byte(`{"id":"e1","type":"` + typ + `","source":"chat","time":"2026-01-01T00:00:00Z","version":1,"data":` + data + `}`)
	}
	tests := []struct {
		name     string
		raw      []byte
		wantName string
	}{
		{"created, this chat", env(events.SubjectMessageCreated, `{"chat_id":"c1","user_id":"u1","assistant_message_id":"m2"}`), "message.created"},
		{"completed, this chat", env(events.SubjectMessageCompleted, `{"chat_id":"c1","user_id":"u1","message":{"id":"m2"}}`), "message.completed"},
		{"chat updated", env(events.SubjectChatUpdated, `{"user_id":"u1","chat":{"id":"c1","title":"t"}}`), "chat.updated"},
		{"other chat", env(events.SubjectMessageCreated, `{"chat_id":"c2","user_id":"u1"}`), ""},
		{"other user's event naming this chat", env(events.SubjectMessageCreated, `{"chat_id":"c1","user_id":"u2"}`), ""},
		{"other chat updated", env(events.SubjectChatUpdated, `{"user_id":"u1","chat":{"id":"c2"}}`), ""},
		{"garbage", []byte("nope"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, data, ok := chatEvent(tt.raw, "c1", "u1")
			if name != tt.wantName || ok != (tt.wantName != "") {
				t.Fatalf("got %q %v, want %q", name, ok, tt.wantName)
			}
			if ok && strings.ContainsAny(string(data), "\n\r") {
				t.Errorf("data is not one line: %q", data)
			}
		})
	}
}
