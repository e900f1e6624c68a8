package provider_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
	"github.com/parley-chat/parley/services/inference/internal/provider"
)

const model = "mistralai/Mistral-7B-Instruct-v0.3"

func newFake(t *testing.T, o fakehf.Options) *fakehf.Server {
	t.Helper()
	f := fakehf.New(o)
	t.Cleanup(f.Close)
	return f
}

func newClient(f *fakehf.Server, token string, mod func(*provider.Options)) *provider.Client {
	o := provider.Options{
		Name: "HuggingFace", BaseURL: f.BaseURL(), Token: token, TokenVar: "HF_API_TOKEN", BaseURLVar: "HF_CHAT_BASE_URL",
		FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	return provider.New(o)
}

func request(question string) app.ChatRequest {
	return app.ChatRequest{Model: model, MaxTokens: 100, Messages: []events.Turn{
		{Role: events.RoleSystem, Content: "Be brief."},
		{Role: events.RoleUser, Content: "earlier question"},
		{Role: events.RoleAssistant, Content: "earlier answer"},
		{Role: events.RoleUser, Content: question},
	}}
}

func stream(t *testing.T, c *provider.Client, req app.ChatRequest) (string, app.ChatResult, error) {
	t.Helper()
	var sb strings.Builder
	res, err := c.Stream(context.Background(), req, func(s string) { sb.WriteString(s) })
	return sb.String(), res, err
}

func TestStreamFramings(t *testing.T) {
	want := "You said: hello there (seen 4 messages)"
	tests := []struct {
		name      string
		opts      fakehf.Options
		step      *fakehf.Step
		wantUsage *events.Usage
	}{
		{name: "openai framing, usage chunk", opts: fakehf.Options{}, wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
		{name: "tgi raw framing", opts: fakehf.Options{Framing: fakehf.FramingTGI}, wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
		{name: "usage in finish chunk", opts: fakehf.Options{Usage: fakehf.UsageInFinish, RoleOnlyFirstChunk: true},
			wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
		{name: "cumulative usage", opts: fakehf.Options{Usage: fakehf.UsageCumulative, ExtraFields: true},
			wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
		{name: "separate finish chunk", opts: fakehf.Options{SeparateFinishChunk: true},
			wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
		{name: "keep-alive comments", opts: fakehf.Options{KeepAlive: 2 * time.Millisecond, TokenDelay: 6 * time.Millisecond,
			FirstTokenDelay: 10 * time.Millisecond, KeepAliveComment: ": PROCESSING"},
			wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
		{name: "no [DONE] after finish", opts: fakehf.Options{Framing: fakehf.FramingTGI}, step: ptr(fakehf.NoDone()),
			wantUsage: &events.Usage{PromptTokens: 30, CompletionTokens: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.opts)
			if tt.step != nil {
				f.Enqueue("", *tt.step)
			}
			got, res, err := stream(t, newClient(f, f.Token(), nil), request("hello there"))
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if got != want {
				t.Errorf("text = %q, want %q", got, want)
			}
			if diff := cmp.Diff(tt.wantUsage, res.Usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
			if res.FinishReason != "stop" {
				t.Errorf("finish = %q, want stop", res.FinishReason)
			}
			reqs := f.ChatRequests()
			if len(reqs) != 1 {
				t.Fatalf("requests = %d, want 1", len(reqs))
			}
			r := reqs[0]
			if got := r.Header.Get("Authorization"); got != "Bearer "+f.Token() {
				t.Errorf("authorization header = %q", got)
			}
			if !r.Chat.Stream || r.Chat.StreamOptions == nil || !r.Chat.StreamOptions.IncludeUsage || r.Chat.MaxTokens == nil || *r.Chat.MaxTokens != 100 {
				t.Errorf("request body = %s", r.Raw)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestMaxTokensFinishLength(t *testing.T) {
	f := newFake(t, fakehf.Options{})
	req := request("one two three four five")
	req.MaxTokens = 3
	got, res, err := stream(t, newClient(f, f.Token(), nil), req)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got != "You said: one" || res.FinishReason != "length" {
		t.Errorf("got %q finish %q", got, res.FinishReason)
	}
}

func TestErrors(t *testing.T) {
	future := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name          string
		step          fakehf.Step
		token         string
		model         string
		wantCode      string
		wantRetry     bool
		wantReason    string
		wantAfterMin  time.Duration
		wantAfterMax  time.Duration
		wantInMessage string
	}{
		{name: "no token", token: "-", step: fakehf.Step{}, wantCode: events.CodeProviderAuth, wantInMessage: "HF_API_TOKEN"},
		{name: "bad token", token: "hf_wrong", step: fakehf.Step{}, wantCode: events.CodeProviderAuth, wantInMessage: "Check HF_API_TOKEN"},
		{name: "scripted 401", step: must(fakehf.Preset("401")), wantCode: events.CodeProviderAuth, wantInMessage: "Invalid username or password."},
		{name: "403", step: fakehf.ErrorStep(403, `{"error":"forbidden"}`), wantCode: events.CodeProviderAuth},
		{name: "404", step: must(fakehf.Preset("404")), wantCode: events.CodeModelNotFound, wantInMessage: model},
		{name: "unknown model", model: "someone/unknown-model", wantCode: events.CodeModelNotSupported, wantInMessage: "someone/unknown-model"},
		{name: "410 legacy", step: must(fakehf.Preset("410")), wantCode: events.CodeProviderInvalid, wantInMessage: "router.huggingface.co"},
		{name: "402 credits", step: must(fakehf.Preset("402")), wantCode: events.CodeProviderCredits, wantInMessage: "credits"},
		{name: "422 validation", step: must(fakehf.Preset("422")), wantCode: events.CodeProviderInvalid, wantInMessage: "temperature"},
		{name: "400 other", step: fakehf.ErrorStep(400, `{"error":{"message":"bad stop","type":"invalid_request_error"}}`), wantCode: events.CodeProviderInvalid, wantInMessage: "bad stop"},
		{name: "400 context", step: must(fakehf.Preset("400-context")), wantCode: events.CodeContextTooLong, wantInMessage: "maximum context length"},
		{name: "422 tgi context", step: fakehf.ErrorStep(422, "{\"error\":\"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 1512. Given: 2 `inputs` tokens and 10000 `max_new_tokens`\",\"error_type\":\"validation\"}"), wantCode: events.CodeContextTooLong},
		{name: "429 no hint", step: fakehf.RateLimited(""), wantCode: events.CodeProviderRateLimited, wantRetry: true, wantReason: events.WaitRateLimited},
		{name: "429 retry-after seconds", step: fakehf.RateLimited("7"), wantCode: events.CodeProviderRateLimited, wantRetry: true,
			wantReason: events.WaitRateLimited, wantAfterMin: 7 * time.Second, wantAfterMax: 7 * time.Second},
		{name: "429 retry-after date", step: fakehf.RateLimited(future), wantCode: events.CodeProviderRateLimited, wantRetry: true,
			wantReason: events.WaitRateLimited, wantAfterMin: time.Second, wantAfterMax: 4 * time.Second},
		{name: "429 ratelimit header", step: fakehf.RateLimitedHeader(55), wantCode: events.CodeProviderRateLimited, wantRetry: true,
			wantReason: events.WaitRateLimited, wantAfterMin: 55 * time.Second, wantAfterMax: 55 * time.Second},
		{name: "429 overloaded", step: must(fakehf.Preset("429-overloaded")), wantCode: events.CodeProviderRateLimited, wantRetry: true, wantReason: events.WaitOverloaded},
		{name: "503 loading", step: fakehf.Loading(model, 20.5), wantCode: events.CodeProviderUnavailable, wantRetry: true,
			wantReason: events.WaitModelLoading, wantAfterMin: 20500 * time.Millisecond, wantAfterMax: 20500 * time.Millisecond, wantInMessage: "loading"},
		{name: "503 router", step: must(fakehf.Preset("503")), wantCode: events.CodeProviderUnavailable, wantRetry: true, wantReason: events.WaitOverloaded},
		{name: "502 html", step: must(fakehf.Preset("502")), wantCode: events.CodeProviderUnavailable, wantRetry: true, wantInMessage: "502 Bad Gateway"},
		{name: "504 empty", step: must(fakehf.Preset("504")), wantCode: events.CodeProviderUnavailable, wantRetry: true, wantInMessage: "Gateway Timeout"},
		{name: "500 string", step: must(fakehf.Preset("500")), wantCode: events.CodeProviderUnavailable, wantInMessage: "Internal Server Error"},
		{name: "500 object", step: must(fakehf.Preset("500-object")), wantCode: events.CodeProviderUnavailable, wantInMessage: "upstream provider failed"},
		{name: "500 message", step: must(fakehf.Preset("500-message")), wantCode: events.CodeProviderUnavailable, wantInMessage: "Internal server error occurred"},
		{name: "500 detail", step: must(fakehf.Preset("500-detail")), wantCode: events.CodeProviderUnavailable, wantInMessage: "Internal Server Error"},
		{name: "424 generation", step: must(fakehf.Preset("424")), wantCode: events.CodeProviderUnavailable, wantInMessage: "CUDA"},
		{name: "mid-stream tgi", step: fakehf.MidStreamError(2, fakehf.StreamErrTGI), wantCode: events.CodeProviderUnavailable, wantInMessage: "CUDA"},
		{name: "mid-stream tgi 422", step: fakehf.MidStreamError(2, fakehf.StreamErrTGIVal), wantCode: events.CodeProviderInvalid, wantInMessage: "max_tokens"},
		{name: "mid-stream vllm", step: fakehf.MidStreamError(1, fakehf.StreamErrVLLM), wantCode: events.CodeProviderUnavailable, wantInMessage: "engine died"},
		{name: "mid-stream vllm old", step: fakehf.MidStreamError(1, fakehf.StreamErrVLLMOld), wantCode: events.CodeProviderUnavailable, wantInMessage: "engine died"},
		{name: "mid-stream overloaded", step: fakehf.MidStreamError(3, fakehf.StreamErrOverloaded), wantCode: events.CodeProviderUnavailable,
			wantRetry: true, wantReason: events.WaitOverloaded, wantInMessage: "overloaded"},
		{name: "dropped connection", step: fakehf.Drop(2), wantCode: events.CodeProviderInterrupted, wantRetry: true},
		{name: "dropped before any chunk", step: fakehf.Drop(0), wantCode: events.CodeProviderInterrupted, wantRetry: true},
		{name: "cut mid-json", step: must(fakehf.Preset("cut:2")), wantCode: events.CodeProviderInterrupted, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, fakehf.Options{})
			f.Enqueue("", tt.step)
			token := f.Token()
			switch tt.token {
			case "-":
				token = ""
			case "":
			default:
				token = tt.token
			}
			req := request("hello")
			if tt.model != "" {
				req.Model = tt.model
			}
			_, _, err := stream(t, newClient(f, token, nil), req)
			var pe *app.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ProviderError", err)
			}
			if pe.Code != tt.wantCode || pe.Retryable != tt.wantRetry {
				t.Errorf("code, retryable = %s, %v; want %s, %v (message %q)", pe.Code, pe.Retryable, tt.wantCode, tt.wantRetry, pe.Message)
			}
			if tt.wantReason != "" && pe.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", pe.Reason, tt.wantReason)
			}
			if pe.RetryAfter < tt.wantAfterMin || (tt.wantAfterMax > 0 && pe.RetryAfter > tt.wantAfterMax) {
				t.Errorf("retry after = %s, want [%s, %s]", pe.RetryAfter, tt.wantAfterMin, tt.wantAfterMax)
			}
			if !strings.Contains(pe.Message, tt.wantInMessage) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.wantInMessage)
			}
			if f.Token() != "" && strings.Contains(pe.Message, f.Token()) {
				t.Errorf("message leaks the token: %q", pe.Message)
			}
		})
	}
}

func must(s fakehf.Step, ok bool) fakehf.Step {
	if !ok {
		panic("unknown preset")
	}
	return s
}

func TestContextLengthCheckedByFake(t *testing.T) {
	f := newFake(t, fakehf.Options{Models: []fakehf.Model{{ID: model, ContextLength: 50}}})
	req := request(strings.Repeat("long words ", 40))
	_, _, err := stream(t, newClient(f, f.Token(), nil), req)
	var pe *app.ProviderError
	if !errors.As(err, &pe) || pe.Code != events.CodeContextTooLong {
		t.Fatalf("err = %v, want context_length_exceeded", err)
	}
}

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name     string
		opts     fakehf.Options
		step     fakehf.Step
		wantCode string
	}{
		{name: "no first byte", opts: fakehf.Options{FirstTokenDelay: 5 * time.Second}, wantCode: events.CodeProviderUnavailable},
		{name: "stalls mid-stream", step: fakehf.Step{Fault: fakehf.FaultStall, After: 2}, wantCode: events.CodeProviderInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.opts)
			f.Enqueue("", tt.step)
			c := newClient(f, f.Token(), func(o *provider.Options) {
				o.FirstByteTimeout = 300 * time.Millisecond
				o.IdleTimeout = 300 * time.Millisecond
			})
			_, _, err := stream(t, c, request("hi"))
			var pe *app.ProviderError
			if !errors.As(err, &pe) || pe.Code != tt.wantCode || !pe.Retryable {
				t.Fatalf("err = %v, want retryable %s", err, tt.wantCode)
			}
			waitCancelled(t, f)
		})
	}
}

func waitCancelled(t *testing.T, f *fakehf.Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		reqs := f.ChatRequests()
		if len(reqs) > 0 && reqs[len(reqs)-1].Finished {
			if !reqs[len(reqs)-1].Cancelled {
				t.Fatalf("fake did not see the client go away")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fake request never finished")
}

func TestCancelStopsUpstream(t *testing.T) {
	f := newFake(t, fakehf.Options{TokenDelay: 50 * time.Millisecond})
	c := newClient(f, f.Token(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	var got strings.Builder
	_, err := c.Stream(ctx, request("a b c d e f g h i j k l m n o p"), func(s string) {
		got.WriteString(s)
		if got.Len() > 10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	waitCancelled(t, f)
}

func TestModelsDiscovery(t *testing.T) {
	f := newFake(t, fakehf.Options{})
	c := newClient(f, f.Token(), nil)
	n, err := c.ContextLength(context.Background(), "mistralai/Mistral-Nemo-Instruct-2407:fastest")
	if err != nil || n != 131072 {
		t.Fatalf("context length = %d, %v; want 131072", n, err)
	}
	list, err := c.ListModels(context.Background())
	if err != nil {
		t.Fatalf("list models: %v", err)
	}
	if len(list) != len(fakehf.DefaultModels()) || list[0].ID != fakehf.DefaultModels()[0].ID || list[0].ContextLength != 32768 {
		t.Errorf("models = %+v", list)
	}
	if _, err := c.ContextLength(context.Background(), "nobody/nothing"); err == nil {
		t.Errorf("unknown model: want an error")
	}
}

func TestDemo(t *testing.T) {
	var sb strings.Builder
	res, err := provider.Demo{}.Stream(context.Background(), request("what is the weather?"), func(s string) { sb.WriteString(s) })
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	text := sb.String()
	for _, want := range []string{"offline demo model", "what is the weather?", "HF_API_TOKEN", "OPENAI_BASE_URL"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo answer %q lacks %q", text, want)
		}
	}
	if res.FinishReason != "stop" || res.Usage == nil {
		t.Errorf("result = %+v", res)
	}
}
