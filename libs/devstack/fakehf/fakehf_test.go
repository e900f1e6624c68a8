package fakehf_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
)

func post(t *testing.T, f *fakehf.Server, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.BaseURL()+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestAuthAndModels(t *testing.T) {
	f := fakehf.New(fakehf.Options{})
	defer f.Close()
	body := `{"model":"mistralai/Mistral-7B-Instruct-v0.3","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, token, body string
		status            int
		want              string
	}{
		{name: "no token", body: body, status: 401, want: fakehf.BodyNoAuth},
		{name: "bad token", token: "hf_nope", body: body, status: 401, want: fakehf.BodyBadCredentials},
		{name: "unknown model", token: f.Token(), body: `{"model":"x/y","messages":[]}`, status: 400, want: `"code":"model_not_supported"`},
		{name: "suffix accepted", token: f.Token(), body: strings.Replace(body, "v0.3", "v0.3:fastest", 1), status: 200, want: `"finish_reason":"stop"`},
		{name: "non-stream answer", token: f.Token(), body: body, status: 200, want: `"content":"You said: hi (seen 1 messages)"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, f, tt.token, tt.body)
			got := readAll(t, resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(got, tt.want) {
				t.Errorf("got %d %s, want %d containing %s", resp.StatusCode, got, tt.status, tt.want)
			}
		})
	}
	resp, err := http.Get(f.BaseURL() + "/models/mistralai/Mistral-Nemo-Instruct-2407")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Data struct {
			ID        string `json:"id"`
			Providers []struct {
				ContextLength int `json:"context_length"`
			} `json:"providers"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m.Data.ID != "mistralai/Mistral-Nemo-Instruct-2407" ||
		len(m.Data.Providers) != 1 || m.Data.Providers[0].ContextLength != 131072 {
		t.Errorf("model = %+v, %v", m, err)
	}
	if n := len(f.Requests()); n != len(tests)+1 {
		t.Errorf("recorded %d requests, want %d", n, len(tests)+1)
	}
}

func TestStreamShapes(t *testing.T) {
	body := `{"model":"mistralai/Mistral-7B-Instruct-v0.3","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b"}]}`
	tests := []struct {
		name     string
		opts     fakehf.Options
		step     *fakehf.Step
		prefix   string
		lastLine string
		contains string
	}{
		{name: "openai", prefix: "data: {", lastLine: "data: [DONE]", contains: `"choices":[],"usage":{"prompt_tokens"`},
		{name: "tgi", opts: fakehf.Options{Framing: fakehf.FramingTGI}, prefix: "data:{", lastLine: "data:[DONE]"},
		{name: "no done", step: ptr(fakehf.NoDone()), prefix: "data: {", lastLine: `data: {"object":"chat.completion.chunk"`},
		{name: "mid-stream error", step: ptr(fakehf.MidStreamError(1, fakehf.StreamErrTGI)), prefix: "data: {", lastLine: "data: [DONE]",
			contains: `"http_status_code":500`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakehf.New(tt.opts)
			defer f.Close()
			if tt.step != nil {
				f.Enqueue("", *tt.step)
			}
			resp := post(t, f, f.Token(), body)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content type %q", ct)
			}
			var lines []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if sc.Text() != "" {
					lines = append(lines, sc.Text())
				}
			}
			if len(lines) < 2 || !strings.HasPrefix(lines[0], tt.prefix) || !strings.HasPrefix(lines[len(lines)-1], tt.lastLine) {
				t.Errorf("stream:\n%s", strings.Join(lines, "\n"))
			}
			if !strings.Contains(strings.Join(lines, "\n"), tt.contains) {
				t.Errorf("stream lacks %s:\n%s", tt.contains, strings.Join(lines, "\n"))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestStrictRoles(t *testing.T) {
	f := fakehf.New(fakehf.Options{StrictRoles: true})
	defer f.Close()
	resp := post(t, f, f.Token(), `{"model":"mistralai/Mistral-7B-Instruct-v0.3","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}`)
	if got := readAll(t, resp.Body); resp.StatusCode != 422 || !strings.Contains(got, "Conversation roles must alternate") {
		t.Errorf("got %d %s", resp.StatusCode, got)
	}
}
