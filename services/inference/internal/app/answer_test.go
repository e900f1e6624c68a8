package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
	"github.com/parley-chat/parley/services/inference/internal/provider"
)

const model = "mistralai/Mistral-7B-Instruct-v0.3"

// sink records what an answer publishes, as a compact log.
type sink struct {
	mu     sync.Mutex
	events []string
	text   strings.Builder
	onText func(string)
}

func (s *sink) Delta(_ context.Context, t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.text.WriteString(t)
	if s.onText != nil {
		s.onText(s.text.String())
	}
}

func (s *sink) Reset(context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, "reset")
	s.text.Reset()
}

func (s *sink) Waiting(_ context.Context, reason string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.Before(time.Now().Add(-time.Second)) {
		reason += "(in the past)"
	}
	s.events = append(s.events, "waiting:"+reason)
}

func (s *sink) Attempt(context.Context, int, time.Time) {}

func newAnswerer(t *testing.T, f *fakehf.Server, maxWait time.Duration) *app.Answerer {
	t.Helper()
	c := provider.New(provider.Options{Name: "HuggingFace", BaseURL: f.BaseURL(), Token: f.Token(), TokenVar: "HF_API_TOKEN",
		FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second})
	var entries []app.Entry
	for _, m := range fakehf.DefaultModels() {
		entries = append(entries, app.NewEntry(m.ID, m.ID, events.ProviderHuggingFace, 0, c))
	}
	return &app.Answerer{
		Catalog: app.NewCatalog(entries...), MaxTokens: 256, RetryMaxWait: maxWait,
		RetryBase: 10 * time.Millisecond, RetryCap: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
	}
}

func job(question string) app.Job {
	return app.Job{MessageID: "m1", Conversation: events.ConversationReply{
		Model: model, SystemPrompt: "Be brief.",
		Turns: []events.Turn{u("old question"), a("old answer"), u(question)},
	}}
}

func TestAnswerRetries(t *testing.T) {
	want := "You said: why? (seen 4 messages)"
	tests := []struct {
		name       string
		steps      []fakehf.Step
		maxWait    time.Duration
		wantStatus string
		wantCode   string
		wantEvents []string
		wantTries  int
	}{
		{name: "plain", wantStatus: events.StatusComplete, wantTries: 1},
		{name: "429 with Retry-After then success", steps: []fakehf.Step{fakehf.RateLimited("1")}, maxWait: time.Minute,
			wantStatus: events.StatusComplete, wantEvents: []string{"waiting:rate_limited"}, wantTries: 2},
		{name: "429 without hint twice then success", steps: []fakehf.Step{fakehf.RateLimited(""), fakehf.RateLimited("")}, maxWait: time.Minute,
			wantStatus: events.StatusComplete, wantEvents: []string{"waiting:rate_limited", "waiting:rate_limited"}, wantTries: 3},
		{name: "503 loading then success", steps: []fakehf.Step{fakehf.Loading(model, 0.2)}, maxWait: time.Minute,
			wantStatus: events.StatusComplete, wantEvents: []string{"waiting:model_loading"}, wantTries: 2},
		{name: "502 then success", steps: []fakehf.Step{fakehf.ErrorStep(502, fakehf.BodyHTML)}, maxWait: time.Minute,
			wantStatus: events.StatusComplete, wantEvents: []string{"waiting:overloaded"}, wantTries: 2},
		{name: "dropped mid-stream restarts with reset", steps: []fakehf.Step{fakehf.Drop(3)}, maxWait: time.Minute,
			wantStatus: events.StatusComplete, wantEvents: []string{"waiting:overloaded", "reset"}, wantTries: 2},
		{name: "retry-after beyond the budget fails at once", steps: []fakehf.Step{fakehf.RateLimited("600")}, maxWait: time.Minute,
			wantStatus: events.StatusFailed, wantCode: events.CodeProviderRateLimited, wantTries: 1},
		{name: "budget exhausted", steps: []fakehf.Step{fakehf.Loading(model, 0.3), fakehf.Loading(model, 0.3), fakehf.Loading(model, 0.3)},
			maxWait: 500 * time.Millisecond, wantStatus: events.StatusFailed, wantCode: events.CodeProviderUnavailable,
			wantEvents: []string{"waiting:model_loading"}, wantTries: 2},
		{name: "401 is not retried", steps: []fakehf.Step{must(fakehf.Preset("401"))}, maxWait: time.Minute,
			wantStatus: events.StatusFailed, wantCode: events.CodeProviderAuth, wantTries: 1},
		{name: "mid-stream error is not retried", steps: []fakehf.Step{fakehf.MidStreamError(2, fakehf.StreamErrTGI)}, maxWait: time.Minute,
			wantStatus: events.StatusFailed, wantCode: events.CodeProviderUnavailable, wantTries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakehf.New(fakehf.Options{})
			t.Cleanup(f.Close)
			f.Enqueue("", tt.steps...)
			s := &sink{}
			out := newAnswerer(t, f, tt.maxWait).Answer(context.Background(), job("why?"), s)
			if out.Status != tt.wantStatus || out.Attempts != tt.wantTries {
				t.Fatalf("status, attempts = %s, %d; want %s, %d (err %+v)", out.Status, out.Attempts, tt.wantStatus, tt.wantTries, out.Err)
			}
			if diff := cmp.Diff(tt.wantEvents, s.events); diff != "" {
				t.Errorf("sink events (-want +got):\n%s", diff)
			}
			if tt.wantStatus == events.StatusComplete {
				if out.Content != want || s.text.String() != want {
					t.Errorf("content = %q, streamed %q; want %q", out.Content, s.text.String(), want)
				}
				if out.Model != model || out.Usage == nil || out.Usage.CompletionTokens == 0 {
					t.Errorf("model, usage = %s, %+v", out.Model, out.Usage)
				}
				return
			}
			if out.Err == nil || out.Err.Code != tt.wantCode || out.Err.Message == "" {
				t.Errorf("error = %+v, want code %s", out.Err, tt.wantCode)
			}
		})
	}
}

func TestAnswerSendsOnlyThisConversation(t *testing.T) {
	f := fakehf.New(fakehf.Options{})
	t.Cleanup(f.Close)
	out := newAnswerer(t, f, time.Minute).Answer(context.Background(), job("the real question"), &sink{})
	if out.Status != events.StatusComplete {
		t.Fatalf("status %s: %+v", out.Status, out.Err)
	}
	reqs := f.ChatRequests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d", len(reqs))
	}
	var got []string
	for _, m := range reqs[0].Chat.Messages {
		got = append(got, m.Role+": "+m.Content)
	}
	want := []string{"system: Be brief.", "user: old question", "assistant: old answer", "user: the real question"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages sent (-want +got):\n%s", diff)
	}
}

func TestAnswerTooLong(t *testing.T) {
	f := fakehf.New(fakehf.Options{})
	t.Cleanup(f.Close)
	j := job(strings.Repeat("word ", 40000))
	out := newAnswerer(t, f, time.Minute).Answer(context.Background(), j, &sink{})
	if out.Status != events.StatusFailed || out.Err == nil || out.Err.Code != events.CodeContextTooLong {
		t.Fatalf("outcome = %+v", out)
	}
	if n := len(f.ChatRequests()); n != 0 {
		t.Errorf("provider called %d times, want 0", n)
	}
}

func TestAnswerCancelKeepsTextSoFar(t *testing.T) {
	f := fakehf.New(fakehf.Options{TokenDelay: 20 * time.Millisecond})
	t.Cleanup(f.Close)
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{onText: func(text string) {
		if len(text) > 15 {
			cancel()
		}
	}}
	out := newAnswerer(t, f, time.Minute).Answer(ctx, job(strings.Repeat("w ", 50)), s)
	if out.Status != events.StatusCancelled {
		t.Fatalf("status = %s", out.Status)
	}
	if out.Content == "" || !strings.HasPrefix("You said: "+strings.Repeat("w ", 50), out.Content) {
		t.Errorf("content = %q", out.Content)
	}
}

func TestUnknownChatModelUsesDefault(t *testing.T) {
	f := fakehf.New(fakehf.Options{})
	t.Cleanup(f.Close)
	j := job("hi")
	j.Conversation.Model = "gone/model"
	out := newAnswerer(t, f, time.Minute).Answer(context.Background(), j, &sink{})
	if out.Status != events.StatusComplete || out.Model != fakehf.DefaultModels()[0].ID {
		t.Fatalf("outcome = %+v", out)
	}
	if got := f.ChatRequests()[0].Chat.Model; got != fakehf.DefaultModels()[0].ID {
		t.Errorf("requested model %s", got)
	}
}

func must(s fakehf.Step, ok bool) fakehf.Step {
	if !ok {
		panic(fmt.Sprintf("unknown preset"))
	}
	return s
}
