package conversations_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// requestFor returns the last chat request a fake received whose last user message is
// content (not a title request).
func requestFor(t *testing.T, hf *fakehf.Server, content string) fakehf.ChatRequest {
	t.Helper()
	reqs := hf.ChatRequests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Chat.LastUser() == content {
			return *reqs[i].Chat
		}
	}
	t.Fatalf("no request for %q", content)
	return fakehf.ChatRequest{}
}

// allModels waits for discovery: the server's model and the tiny model's context
// window from the router's metadata.
func allModels(t *testing.T, c *e2e.Client) []events.Model {
	t.Helper()
	return waitModels(t, c, func(ms []events.Model) error {
		for _, m := range ms {
			if m.ID == modelTiny && m.ContextLength != tinyContext {
				return fmt.Errorf("%s has context %d", m.ID, m.ContextLength)
			}
			if m.ID == modelServer {
				return nil
			}
		}
		return fmt.Errorf("no %s yet in %+v", modelServer, ms)
	})
}

func testModels(t *testing.T, s *env) {
	ann := s.User("models_ann").WithT(t)

	got := allModels(t, ann)
	type short struct {
		ID, Provider string
		Default      bool
	}
	var ids []short
	for _, m := range got {
		ids = append(ids, short{m.ID, m.Provider, m.Default})
		if m.ContextLength <= 0 || m.Name == "" {
			t.Errorf("model %+v lacks a name or a context length", m)
		}
	}
	want := []short{
		{modelDefault, events.ProviderHuggingFace, true},
		{modelNemo, events.ProviderHuggingFace, false},
		{modelTitles, events.ProviderHuggingFace, false},
		{modelTiny, events.ProviderHuggingFace, false},
		{modelServer, events.ProviderOpenAI, false},
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}

	if c := createChat(t, ann, map[string]any{}); c.Model != modelDefault {
		t.Errorf("a new chat gets %q, want the default %q", c.Model, modelDefault)
	}
	for _, body := range []map[string]any{{"model": "nobody/none"}, {"model": events.ProviderDemo}} {
		res, _ := ann.Do("POST", "/api/chats", body)
		if res.Status != http.StatusBadRequest || res.Code() != events.CodeUnknownModel {
			t.Errorf("create with %v: %d %s, want 400 unknown_model", body, res.Status, res.Body)
		}
	}

	c := createChat(t, ann, map[string]any{"model": modelNemo})
	if c.Model != modelNemo {
		t.Fatalf("chat model %q", c.Model)
	}
	// Changing the model while an answer is pending applies to the next answer.
	s.hf.Enqueue(modelNemo, fakehf.Step{Delay: 700 * time.Millisecond})
	sent := ann.Send(c.ID, "first on nemo")
	var rep events.ChatReply
	ann.Call("PATCH", "/api/chats/"+c.ID, map[string]any{"model": modelServer}, http.StatusOK, &rep)
	if rep.Chat.Model != modelServer {
		t.Errorf("patched model %q", rep.Chat.Model)
	}
	ann.Stream(sent.AssistantMessage.ID)
	a1 := ann.Message(c.ID, sent.AssistantMessage.ID)
	a2 := ask(t, ann, c.ID, "second on the server")

	if r := requestFor(t, s.hf, "first on nemo"); r.Model != modelNemo {
		t.Errorf("first answer asked of %q", r.Model)
	}
	r := requestFor(t, s.server, "second on the server")
	if r.Model != modelServer || len(r.Messages) != 3 {
		t.Errorf("second answer asked of %q with %d messages (want the whole chat: 3)", r.Model, len(r.Messages))
	}
	for _, tc := range []struct {
		m     events.Message
		model string
	}{{a1, modelNemo}, {a2, modelServer}} {
		if tc.m.Status != events.StatusComplete || tc.m.Model != tc.model {
			t.Errorf("answer %q: status %s model %q, want complete by %q", tc.m.Content, tc.m.Status, tc.m.Model, tc.model)
		}
		if tc.m.Usage == nil || tc.m.Usage.PromptTokens <= 0 || tc.m.Usage.CompletionTokens <= 0 {
			t.Errorf("answer %q: usage %+v", tc.m.Content, tc.m.Usage)
		}
	}
	// The stored history keeps who wrote what.
	for _, m := range ann.Messages(c.ID) {
		if m.ID == a1.ID && m.Model != modelNemo {
			t.Errorf("the first answer now says model %q", m.Model)
		}
	}

	for _, body := range []map[string]any{{"model": "nobody/none"}, {"model": ""}} {
		res, _ := ann.Do("PATCH", "/api/chats/"+c.ID, body)
		if res.Status != http.StatusBadRequest {
			t.Errorf("PATCH %v: %d %s, want 400", body, res.Status, res.Body)
		}
	}
	if got := getChat(t, ann, c.ID).Model; got != modelServer {
		t.Errorf("model after refused changes %q", got)
	}
}

func testSystemPrompt(t *testing.T, s *env) {
	ann := s.User("prompt_ann").WithT(t)
	c := createChat(t, ann, map[string]any{"system_prompt": "  You are a pirate.  "})
	if c.SystemPrompt != "You are a pirate." {
		t.Errorf("system prompt %q", c.SystemPrompt)
	}
	check := func(content, system string) {
		t.Helper()
		ask(t, ann, c.ID, content)
		r := requestFor(t, s.hf, content)
		var first fakehf.Message
		if len(r.Messages) > 0 {
			first = r.Messages[0]
		}
		switch {
		case system == "" && first.Role == events.RoleSystem:
			t.Errorf("%q: a system message %q, want none", content, first.Content)
		case system != "" && (first.Role != events.RoleSystem || first.Content != system):
			t.Errorf("%q: first message %+v, want the system prompt %q", content, first, system)
		}
		for _, m := range r.Messages[1:] {
			if m.Role == events.RoleSystem {
				t.Errorf("%q: a second system message", content)
			}
		}
	}
	check("ahoy one", "You are a pirate.")

	var rep events.ChatReply
	ann.Call("PATCH", "/api/chats/"+c.ID, map[string]any{"system_prompt": "You are a poet."}, http.StatusOK, &rep)
	if rep.Chat.SystemPrompt != "You are a poet." {
		t.Errorf("patched prompt %q", rep.Chat.SystemPrompt)
	}
	check("ahoy two", "You are a poet.")

	rep = events.ChatReply{}
	ann.Call("PATCH", "/api/chats/"+c.ID, map[string]any{"system_prompt": ""}, http.StatusOK, &rep)
	if rep.Chat.SystemPrompt != "" || rep.Chat.ID != c.ID {
		t.Errorf("cleared prompt %q", rep.Chat.SystemPrompt)
	}
	check("ahoy three", "")

	// A PATCH without system_prompt leaves it alone.
	ann.Call("PATCH", "/api/chats/"+c.ID, map[string]any{"system_prompt": "Be terse."}, http.StatusOK, nil)
	rep = events.ChatReply{}
	ann.Call("PATCH", "/api/chats/"+c.ID, map[string]any{"title": "Pirates"}, http.StatusOK, &rep)
	if rep.Chat.SystemPrompt != "Be terse." {
		t.Errorf("prompt after a title change %q", rep.Chat.SystemPrompt)
	}

	long := strings.Repeat("a", events.MaxSystemPrompt+1)
	if res, _ := ann.Do("POST", "/api/chats", map[string]any{"system_prompt": long}); res.Status != http.StatusBadRequest {
		t.Errorf("create with an over-long prompt: %d", res.Status)
	}
	if res, _ := ann.Do("PATCH", "/api/chats/"+c.ID, map[string]any{"system_prompt": long}); res.Status != http.StatusBadRequest {
		t.Errorf("patch with an over-long prompt: %d", res.Status)
	}
}

func testContextWindow(t *testing.T, s *env) {
	ann := s.User("context_ann").WithT(t)
	allModels(t, ann)
	const system = "Be brief."
	c := createChat(t, ann, map[string]any{"model": modelTiny, "system_prompt": system})
	var asked []string
	for i := 1; i <= 4; i++ {
		q := fmt.Sprintf("question %d: %s", i, strings.TrimSpace(strings.Repeat("lorem ipsum ", 50)))
		asked = append(asked, q)
		if a := ask(t, ann, c.ID, q); a.Status != events.StatusComplete {
			t.Fatalf("answer %d: %s %+v", i, a.Status, a.Error)
		}
	}
	history := ann.Messages(c.ID)
	r := requestFor(t, s.hf, asked[3])
	msgs := r.Messages
	if len(msgs) < 2 || msgs[0].Role != events.RoleSystem || msgs[0].Content != system {
		t.Fatalf("the system prompt is not first: %+v", msgs)
	}
	sent := msgs[1:]
	// The newest user message is last; what precedes it is the newest whole turns of
	// the chat, starting with a user turn, never a cut message.
	if last := sent[len(sent)-1]; last.Role != events.RoleUser || last.Content != asked[3] {
		t.Errorf("last message %+v, want the newest question", last)
	}
	if len(sent) >= len(history)-1 {
		t.Errorf("%d of %d messages sent: nothing trimmed for a %d-token window", len(sent), len(history)-1, tinyContext)
	}
	if sent[0].Role != events.RoleUser {
		t.Errorf("the kept history starts with %s", sent[0].Role)
	}
	// history ends with the pending (now complete) last answer: compare before it.
	prior := history[:len(history)-1]
	tail := prior[len(prior)-len(sent):]
	for i := range sent {
		if sent[i].Role != tail[i].Role || sent[i].Content != tail[i].Content {
			t.Errorf("message %d sent %s %.40q..., stored %s %.40q...", i, sent[i].Role, sent[i].Content, tail[i].Role, tail[i].Content)
		}
	}

	// A single message too long for the window is a clear error, not a cut.
	sentLong := ann.Send(c.ID, strings.Repeat("x", 3000))
	a := e2e.Collect(t, ann.Stream(sentLong.AssistantMessage.ID))
	if a.ErrCode != events.CodeContextTooLong || a.Final.Status != events.StatusFailed {
		t.Fatalf("over-long message: code %q status %q", a.ErrCode, a.Final.Status)
	}
	if msg := a.Final.Error.Message; !strings.Contains(msg, "too long") || !strings.Contains(msg, "shorten") {
		t.Errorf("error message %q does not say what to do", msg)
	}
	for _, req := range s.hf.ChatRequests() {
		if req.Chat.LastUser() == strings.Repeat("x", 3000) {
			t.Error("the over-long message was sent to the model")
		}
	}
}
