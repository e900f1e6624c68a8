package inference_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference"
)

const (
	modelV03  = "mistralai/Mistral-7B-Instruct-v0.3"
	modelV02  = "mistralai/Mistral-7B-Instruct-v0.2"
	modelNemo = "mistralai/Mistral-Nemo-Instruct-2407"
)

func (e *env) newChatWith(req events.CreateChatRequest) events.Chat {
	e.t.Helper()
	return must(request[events.CreateChatRequest, events.ChatReply](e, events.SubjectChatCreate, req))(e.t).Chat
}

// answerRequests are the fake's chat requests for answers (chat also asks for titles).
func (e *env) answerRequests() []fakehf.Request {
	var out []fakehf.Request
	for _, r := range e.fake.ChatRequests() {
		if !strings.HasPrefix(r.Chat.LastUser(), "Write a short title") {
			out = append(out, r)
		}
	}
	return out
}

// hfModels serves v0.2 as well, so chats may pick it.
func hfModels(c *inference.Config) {
	c.HFModels = []string{modelV03, modelV02, modelNemo}
}

func TestRateLimitHandsTheEventBack(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{hf: true, cfg: func(c *inference.Config) {
		hfModels(c)
		c.Concurrency = 1
		c.MaxDeliver = 2 // four deliveries below: hand-backs must not count
		c.ParkAfter = 200 * time.Millisecond
	}})
	for range 3 {
		e.fake.Enqueue(modelNemo, fakehf.RateLimited("1"))
	}
	user := newID()
	busy := e.newChatWith(events.CreateChatRequest{UserID: user, Model: modelNemo})
	other := e.newChat(user)
	busySent := e.send(user, busy.ID, "busy model?")
	// The worker's only slot is free while the busy answer waits in JetStream.
	waitFor(t, 10*time.Second, "the first hand-back", func() bool { return len(e.answerRequests()) >= 1 })
	otherSent := e.send(user, other.ID, "anyone free?")
	if last := e.generation(otherSent.AssistantMessage.ID, nil); last[len(last)-1].Type != events.GenDone {
		t.Fatalf("other answer ended with %+v", last[len(last)-1])
	}
	if m := e.stored(user, busySent.AssistantMessage.ID); events.Terminal(m.Status) {
		t.Fatalf("the busy answer finished before the other one: %+v", m)
	}
	evs := e.generation(busySent.AssistantMessage.ID, nil)
	checkSeqs(t, evs)
	if diff := cmp.Diff([]string{events.GenWaiting, events.GenWaiting, events.GenWaiting, events.GenDelta, events.GenDone}, types(evs)); diff != "" {
		t.Errorf("event types (-want +got):\n%s", diff)
	}
	for _, ev := range evs[:3] {
		if ev.Reason != events.WaitRateLimited || ev.RetryAt == nil {
			t.Errorf("waiting event = %+v", ev)
		}
	}
	last := evs[len(evs)-1]
	if last.Message == nil || last.Message.Status != events.StatusComplete || last.Message.Content != "You said: busy model? (seen 1 messages)" {
		t.Errorf("terminal event = %+v", last)
	}
}

func TestRateLimitGivesUpAfterMaxWait(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{hf: true, cfg: func(c *inference.Config) {
		c.ParkAfter = 200 * time.Millisecond
		c.RetryMaxWait = 2 * time.Second
	}})
	user := newID()
	c := e.newChat(user)
	sent := e.send(user, c.ID, "always busy [fakehf:429-retry-after]")
	evs := e.generation(sent.AssistantMessage.ID, nil)
	checkSeqs(t, evs)
	last := evs[len(evs)-1]
	if last.Type != events.GenError || last.Error == nil || last.Error.Code != events.CodeProviderRateLimited ||
		!strings.Contains(last.Error.Message, "rate limiting") || !strings.Contains(last.Error.Message, "Gave up after") {
		t.Fatalf("terminal event = %+v (error %+v)", last, last.Error)
	}
	if types(evs)[0] != events.GenWaiting {
		t.Errorf("event types = %v, want waiting first", types(evs))
	}
	m := e.stored(user, sent.AssistantMessage.ID)
	if m.Status != events.StatusFailed || m.Error == nil || m.Error.Message != last.Error.Message {
		t.Errorf("stored = %+v", m)
	}
}

func TestCancelWhileWaitingInTheQueue(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{hf: true, cfg: func(c *inference.Config) {
		c.ParkAfter = 200 * time.Millisecond
		c.RetryMaxWait = time.Minute
	}})
	e.fake.Enqueue("", fakehf.RateLimited("30"))
	user := newID()
	c := e.newChat(user)
	sent := e.send(user, c.ID, "slow provider")
	// Wait for the hand-back's waiting event, then cancel.
	waitFor(t, 10*time.Second, "the waiting event", func() bool {
		return len(e.answerRequests()) == 1 && e.answerRequests()[0].Finished
	})
	time.Sleep(200 * time.Millisecond)
	if _, err := request[events.MessageRef, events.MessageReply](e, events.SubjectMessageCancel,
		events.MessageRef{UserID: user, MessageID: sent.AssistantMessage.ID}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	evs := e.generation(sent.AssistantMessage.ID, nil)
	checkSeqs(t, evs)
	if diff := cmp.Diff([]string{events.GenWaiting, events.GenDone}, types(evs)); diff != "" {
		t.Errorf("event types (-want +got):\n%s", diff)
	}
	if last := evs[len(evs)-1]; last.Message == nil || last.Message.Status != events.StatusCancelled {
		t.Errorf("terminal event = %+v", last)
	}
	if m := e.stored(user, sent.AssistantMessage.ID); m.Status != events.StatusCancelled {
		t.Errorf("stored = %+v", m)
	}
}

func TestModelConcurrencyLimit(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{
		hf:   true,
		fake: fakehf.Options{TokenDelay: 30 * time.Millisecond},
		cfg: func(c *inference.Config) {
			hfModels(c)
			c.Concurrency = 4
			c.ModelConcurrency = modelV03 + "=1,default=4"
			c.ModelBusyDelay = 100 * time.Millisecond
		},
	})
	user := newID()
	var ids []string
	for range 3 {
		c := e.newChat(user)
		ids = append(ids, e.send(user, c.ID, "one two three four five six seven eight nine ten").AssistantMessage.ID)
	}
	nemo := e.newChatWith(events.CreateChatRequest{UserID: user, Model: modelNemo})
	ids = append(ids, e.send(user, nemo.ID, "the other model").AssistantMessage.ID)
	queued := false
	for _, id := range ids {
		evs := e.generation(id, nil)
		if last := evs[len(evs)-1]; last.Type != events.GenDone {
			t.Fatalf("answer %s ended with %+v", id, last)
		}
		for _, ev := range evs {
			queued = queued || (ev.Type == events.GenWaiting && ev.Reason == events.WaitQueued)
		}
	}
	if !queued {
		t.Errorf("no answer waited with reason %q", events.WaitQueued)
	}
	var limited []fakehf.Request
	var nemoReq fakehf.Request
	for _, r := range e.answerRequests() {
		switch r.Chat.Model {
		case modelV03:
			limited = append(limited, r)
		case modelNemo:
			nemoReq = r
		}
	}
	if len(limited) != 3 {
		t.Fatalf("%d calls for %s, want 3", len(limited), modelV03)
	}
	for i := 1; i < len(limited); i++ {
		if limited[i].Time.Before(limited[i-1].End) {
			t.Errorf("calls %d and %d for %s overlap (limit 1)", i-1, i, modelV03)
		}
	}
	if !nemoReq.Time.Before(limited[2].Time) {
		t.Errorf("the other model waited for the busy one: started %v, last busy call %v", nemoReq.Time, limited[2].Time)
	}
}

func TestPermanentFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, fakehf.Options{})
	user := newID()
	tests := []struct {
		preset   string
		code     string
		contains string
	}{
		{"401", events.CodeProviderAuth, "HF_API_TOKEN"},
		{"404", events.CodeModelNotFound, "does not know the model " + modelV03},
		{"400-model", events.CodeModelNotSupported, "No inference provider serves the model " + modelV03},
		{"400-context", events.CodeContextTooLong, "too long for the model " + modelV03},
		{"402", events.CodeProviderCredits, "no inference credits left"},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			c := e.newChat(user)
			sent := e.send(user, c.ID, "fail please [fakehf:"+tt.preset+"]")
			evs := e.generation(sent.AssistantMessage.ID, nil)
			last := evs[len(evs)-1]
			if last.Type != events.GenError || last.Error == nil || last.Error.Code != tt.code ||
				!strings.Contains(last.Error.Message, tt.contains) {
				t.Fatalf("terminal event = %+v (error %+v)", last, last.Error)
			}
			if strings.Contains(last.Error.Message, e.fake.Token()) {
				t.Errorf("message shows the token: %q", last.Error.Message)
			}
			m := e.stored(user, sent.AssistantMessage.ID)
			if m.Status != events.StatusFailed || m.Error == nil || m.Error.Code != tt.code {
				t.Errorf("stored = %+v", m)
			}
			if recs := e.logs.Records(map[string]string{"msg": "answer failed", "code": tt.code, "message_id": sent.AssistantMessage.ID}); len(recs) != 1 {
				t.Errorf("%d log lines 'answer failed' with code %s, want 1", len(recs), tt.code)
			}
		})
	}
	if n := len(e.answerRequests()); n != len(tests) {
		t.Errorf("provider called %d times, want %d (no retries of permanent failures)", n, len(tests))
	}
}

func TestStrictRolesModels(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{
		hf:   true,
		fake: fakehf.Options{StrictRoles: true},
		cfg: func(c *inference.Config) {
			hfModels(c)
			c.StrictRolesModels = []string{"mistralai/Mistral-Nemo-*"}
		},
	})
	user := newID()
	system := "Answer like a pirate."
	tests := []struct {
		model  string
		strict bool
	}{
		{modelV02, true},  // built-in pattern
		{modelNemo, true}, // INFERENCE_STRICT_ROLES_MODELS
		{modelV03, false}, // the fake's strict template refuses the system role
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			c := e.newChatWith(events.CreateChatRequest{UserID: user, Model: tt.model, SystemPrompt: &system})
			first := e.generation(e.send(user, c.ID, "first question").AssistantMessage.ID, nil)
			if !tt.strict {
				last := first[len(first)-1]
				if last.Type != events.GenError || last.Error.Code != events.CodeProviderInvalid ||
					!strings.Contains(last.Error.Message, "roles must alternate") {
					t.Fatalf("terminal event = %+v (error %+v)", last, last.Error)
				}
				return
			}
			if last := first[len(first)-1]; last.Type != events.GenDone {
				t.Fatalf("first answer ended with %+v (error %+v)", last, last.Error)
			}
			// A failed answer leaves two user turns in a row in the history.
			failed := e.generation(e.send(user, c.ID, "second question [fakehf:500]").AssistantMessage.ID, nil)
			if last := failed[len(failed)-1]; last.Type != events.GenError {
				t.Fatalf("second answer ended with %+v", last)
			}
			third := e.generation(e.send(user, c.ID, "third question").AssistantMessage.ID, nil)
			if last := third[len(third)-1]; last.Type != events.GenDone {
				t.Fatalf("third answer ended with %+v (error %+v)", last, last.Error)
			}
			reqs := e.answerRequests()
			got := reqs[len(reqs)-1].Chat
			want := []fakehf.Message{
				{Role: "user", Content: system + "\n\nfirst question"},
				{Role: "assistant", Content: "You said: " + system + "\n\nfirst question (seen 1 messages)"},
				{Role: "user", Content: "third question"},
			}
			if got.Model != tt.model {
				t.Errorf("model = %s", got.Model)
			}
			if diff := cmp.Diff(want, got.Messages); diff != "" {
				t.Errorf("messages sent (-want +got):\n%s", diff)
			}
		})
	}
}
