package transport

import (
	"net/http/httptest"
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

// TestParseChatEvent: each CHAT_EVENTS message is decoded once into whose it is (chat
// and user), its SSE name and its data on one line; what a chat stream does not relay
// is refused.
func TestParseChatEvent(t *testing.T) {
	env := func(typ, data string) []byte {
		return []byte(`{"id":"e1","type":"` + typ + `","source":"chat","time":"2026-01-01T00:00:00Z","version":1,"data":` + data + `}`)
	}
	type got struct {
		Key        chatKey
		Name, Data string
		OK         bool
	}
	c1u1 := chatKey{chatID: "c1", userID: "u1"}
	tests := []struct {
		name string
		raw  []byte
		want got
	}{
		{"created", env(events.SubjectMessageCreated, `{"chat_id":"c1", "user_id":"u1",
			"assistant_message_id":"m2"}`),
			got{c1u1, "message.created", `{"chat_id":"c1","user_id":"u1","assistant_message_id":"m2"}`, true}},
		{"completed", env(events.SubjectMessageCompleted, `{"chat_id":"c1","user_id":"u1","message":{"id":"m2"}}`),
			got{c1u1, "message.completed", `{"chat_id":"c1","user_id":"u1","message":{"id":"m2"}}`, true}},
		{"chat updated", env(events.SubjectChatUpdated, `{"user_id":"u1","chat":{"id":"c1","title":"t"}}`),
			got{c1u1, "chat.updated", `{"user_id":"u1","chat":{"id":"c1","title":"t"}}`, true}},
		{"another user's event naming c1", env(events.SubjectMessageCreated, `{"chat_id":"c1","user_id":"u2"}`),
			got{chatKey{chatID: "c1", userID: "u2"}, "message.created", `{"chat_id":"c1","user_id":"u2"}`, true}},
		{"no user", env(events.SubjectMessageCreated, `{"chat_id":"c1"}`), got{}},
		{"no chat", env(events.SubjectChatUpdated, `{"user_id":"u1","chat":{}}`), got{}},
		{"not a chat event", env("auth.events.user.created", `{"chat_id":"c1","user_id":"u1"}`), got{}},
		{"garbage", []byte("nope"), got{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := parseChatEvent(tt.raw)
			g := got{Key: ev.key, Name: ev.name, Data: string(ev.data), OK: ok}
			if diff := cmp.Diff(tt.want, g, cmp.AllowUnexported(chatKey{})); diff != "" {
				t.Errorf("parseChatEvent (-want +got):\n%s", diff)
			}
		})
	}
}
