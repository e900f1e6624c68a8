package chat_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/parley-chat/parley/libs/events"
)

func startAttempt(e *env, id, attemptID string, withConversation bool) (events.StartMessageReply, error) {
	return request[events.StartMessageRequest, events.StartMessageReply](e, events.SubjectMessageStart,
		events.StartMessageRequest{MessageID: id, Attempt: 1, AttemptID: attemptID, WithConversation: withConversation})
}

func newAttempt() string { return uuid.Must(uuid.NewV7()).String() }

// The start of an answer returns what conversation.get returns, so the worker needs
// no second request; FirstStart tells a pending answer from one started before.
func TestStartReturnsTheConversation(t *testing.T) {
	e := newEnv(t)
	alice := newUser()
	prompt := "Be brief."
	c := must(createChat(e, events.CreateChatRequest{UserID: alice, SystemPrompt: &prompt}))(t)
	exchange(t, e, alice, c.ID, "q1", "r1")
	pending := must(send(e, alice, c.ID, "q2", ""))(t)
	id := pending.AssistantMessage.ID

	first := must(startAttempt(e, id, newAttempt(), true))(t)
	if !first.FirstStart || first.Message.Status != events.StatusStreaming || first.Message.ID != id {
		t.Fatalf("first start = %+v, want the answer streaming, first start", first)
	}
	want := must(request[events.ConversationRequest, events.ConversationReply](e, events.SubjectConversationGet,
		events.ConversationRequest{MessageID: id}))(t)
	if first.Conversation == nil {
		t.Fatal("start returned no conversation")
	}
	if diff := cmp.Diff(want, *first.Conversation); diff != "" {
		t.Errorf("conversation of the start (-conversation.get +start):\n%s", diff)
	}
	if len(want.Turns) != 3 || want.SystemPrompt != prompt {
		t.Errorf("conversation = %+v, want 3 turns and the system prompt", want)
	}

	again := must(startAttempt(e, id, newAttempt(), true))(t)
	if again.FirstStart || again.Conversation == nil || again.Message.Status != events.StatusStreaming {
		t.Errorf("second start = %+v, want streaming with a conversation, not a first start", again)
	}
	if diff := cmp.Diff(want, *again.Conversation); diff != "" {
		t.Errorf("conversation of the second start (-want +got):\n%s", diff)
	}
	noConv := must(startAttempt(e, id, "", false))(t)
	if noConv.Conversation != nil {
		t.Errorf("start without with_conversation returned one")
	}

	// A start of a user message or a finished answer is refused as before.
	_, err := startAttempt(e, pending.UserMessage.ID, newAttempt(), true)
	wantCode(t, err, events.CodeNotFound)
	must(complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusComplete, Content: "r2"}))(t)
	_, err = startAttempt(e, id, newAttempt(), true)
	wantCode(t, err, events.CodeNotRunning)
}

// A worker presumed dead (NATS away longer than the ack wait) may still finish its
// attempt after another worker took the answer over: chat keeps the newer attempt's
// text and refuses the stale completion.
func TestStaleAttemptCompletionRefused(t *testing.T) {
	e := newEnv(t)
	alice := newUser()
	c := mustCreate(t, e, alice)
	tests := []struct {
		name string
		// staleFirst completes the stale attempt before the current one.
		staleFirst bool
	}{
		{name: "stale completes first", staleFirst: true},
		{name: "stale completes after the current one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := must(send(e, alice, c.ID, "hello", ""))(t)
			id := r.AssistantMessage.ID
			stale, current := newAttempt(), newAttempt()
			must(startAttempt(e, id, stale, true))(t)
			must(startAttempt(e, id, current, true))(t)

			staleDone := func() {
				t.Helper()
				_, err := complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusComplete,
					Content: "stale text", AttemptID: stale})
				wantCode(t, err, events.CodeConflict)
			}
			if tt.staleFirst {
				staleDone()
				if m := must(getMessage(e, alice, id))(t); m.Status != events.StatusStreaming || m.Content != "" {
					t.Fatalf("after the stale completion: %+v, want still streaming", m)
				}
			}
			done := must(complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusComplete,
				Content: "current text", AttemptID: current}))(t)
			if done.Status != events.StatusComplete || done.Content != "current text" {
				t.Fatalf("current completion stored %+v", done)
			}
			if !tt.staleFirst {
				staleDone()
			}
			// The current attempt's retry, and completions naming no attempt (the reaper,
			// older workers), get the stored answer as before.
			for _, attempt := range []string{current, ""} {
				again := must(complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusFailed,
					AttemptID: attempt}))(t)
				if again.Status != events.StatusComplete || again.Content != "current text" {
					t.Errorf("completion again (attempt %q) = %+v, want the stored answer", attempt, again)
				}
			}
			if m := must(getMessage(e, alice, id))(t); m.Content != "current text" {
				t.Errorf("stored %q, want the current attempt's text", m.Content)
			}
		})
	}
}

// A completion may name the answer's chat (saving a lookup); a wrong one changes
// nothing.
func TestCompletionWithChatID(t *testing.T) {
	e := newEnv(t)
	alice, bob := newUser(), newUser()
	c := mustCreate(t, e, alice)
	other := mustCreate(t, e, alice)
	bobs := mustCreate(t, e, bob)
	tests := []struct {
		name   string
		chatID string
	}{
		{"its chat", c.ID},
		{"another chat of the user", other.ID},
		{"another user's chat", bobs.ID},
		{"no such chat", newAttempt()},
		{"not an id", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := must(send(e, alice, c.ID, "q", ""))(t)
			id := r.AssistantMessage.ID
			attempt := newAttempt()
			must(startAttempt(e, id, attempt, false))(t)
			done := must(complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusComplete,
				Content: "answer " + tt.name, AttemptID: attempt, ChatID: tt.chatID}))(t)
			if done.Status != events.StatusComplete || done.ChatID != c.ID || done.Content != "answer "+tt.name {
				t.Errorf("stored %+v", done)
			}
		})
	}
	if m := must(listMessages(e, bob, bobs.ID, 10, ""))(t); len(m.Messages) != 0 {
		t.Errorf("bob's chat got messages: %+v", m.Messages)
	}
}
