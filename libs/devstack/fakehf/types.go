package fakehf

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Message is one chat message of a request. Content accepts both the string form and
// the OpenAI list-of-parts form ([{"type":"text","text":"..."}]); the parts are joined.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// UnmarshalJSON accepts content as a string or as a list of text parts.
func (m *Message) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role = raw.Role
	m.Content = ""
	if len(raw.Content) == 0 || string(raw.Content) == "null" {
		return nil
	}
	if raw.Content[0] == '"' {
		return json.Unmarshal(raw.Content, &m.Content)
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw.Content, &parts); err != nil {
		return err
	}
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(p.Text)
	}
	m.Content = sb.String()
	return nil
}

// StringList is a JSON value that may be a single string or a list of strings (`stop`).
type StringList []string

// UnmarshalJSON accepts a string or a list of strings.
func (s *StringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// StreamOptions is the request's stream_options object.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ChatRequest is the decoded body of POST /v1/chat/completions (the fields the fake
// looks at; the raw body is recorded too).
type ChatRequest struct {
	Model         string         `json:"model"`
	Messages      []Message      `json:"messages"`
	MaxTokens     *int           `json:"max_tokens,omitempty"`
	Stream        bool           `json:"stream"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
	Stop          StringList     `json:"stop,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	Seed          *int           `json:"seed,omitempty"`
}

// LastUser returns the content of the last user message ("" when there is none).
func (r ChatRequest) LastUser() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Request is one recorded HTTP request.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Header http.Header
	// Raw is the request body as received; Chat is it decoded (chat completions only).
	Raw  []byte
	Chat *ChatRequest
	// Status is the HTTP status the fake answered with.
	Status int
	// Cancelled is set when the client went away (closed the connection or cancelled
	// the request) before the fake finished its answer.
	Cancelled bool
	// Finished is set once the handler returned, at End.
	Finished bool
	End      time.Time
}

// Framing selects how SSE events are written.
type Framing int

const (
	// FramingOpenAI writes `data: {...}` (with a space), as OpenAI, vLLM and the router do.
	FramingOpenAI Framing = iota
	// FramingTGI writes raw axum/TGI framing `data:{...}` and `data:[DONE]`.
	FramingTGI
)

// UsageMode selects where streamed usage is reported.
type UsageMode int

const (
	// UsageOnRequest: `usage:null` on content chunks and, with stream_options.include_usage,
	// a final `choices:[]` usage chunk before [DONE] (OpenAI spec, TGI).
	UsageOnRequest UsageMode = iota
	// UsageInFinish: the chunk with finish_reason carries usage, asked for or not
	// (cerebras, fireworks, together).
	UsageInFinish
	// UsageCumulative: every chunk carries the usage so far (novita).
	UsageCumulative
)

// Model is one model the fake serves.
type Model struct {
	ID            string
	ContextLength int
	// Provider is reported in providers[] and the x-inference-provider header.
	Provider string
	// Always, when set, is the answer to every chat request for this model (after the
	// scripted queue is empty): a model that is always broken in one way.
	Always *Step
}

// DefaultModels are the Mistral instruct models the fake serves when Options.Models is empty.
func DefaultModels() []Model {
	return []Model{
		{ID: "mistralai/Mistral-7B-Instruct-v0.3", ContextLength: 32768, Provider: "featherless-ai"},
		{ID: "mistralai/Mistral-7B-Instruct-v0.2", ContextLength: 32768, Provider: "featherless-ai"},
		{ID: "mistralai/Mistral-Nemo-Instruct-2407", ContextLength: 131072, Provider: "nebius"},
		{ID: "mistralai/Mistral-Small-3.1-24B-Instruct-2503", ContextLength: 131072, Provider: "nebius"},
		{ID: "mistralai/Mixtral-8x7B-Instruct-v0.1", ContextLength: 32768, Provider: "together"},
	}
}

// DefaultToken is the token the fake accepts when Options.Tokens is empty.
const DefaultToken = "hf_fake_test_token"

// Options configure a fake server. The zero value is a working router-like fake.
type Options struct {
	// Tokens are the accepted bearer tokens (default DefaultToken).
	Tokens []string
	// Models served (default DefaultModels()).
	Models []Model
	// Framing of SSE events.
	Framing Framing
	// Usage selects where streamed usage goes.
	Usage UsageMode
	// FirstTokenDelay is the time to the first content chunk; TokenDelay the gap between
	// chunks.
	FirstTokenDelay time.Duration
	TokenDelay      time.Duration
	// KeepAlive, when > 0, writes a comment line every KeepAlive while waiting
	// (before the first token and between tokens).
	KeepAlive time.Duration
	// KeepAliveComment is the comment written (default ":"; e.g. ": PROCESSING").
	KeepAliveComment string
	// RoleOnlyFirstChunk sends a first chunk with only delta.role (cerebras, novita).
	RoleOnlyFirstChunk bool
	// SeparateFinishChunk ends with a chunk `delta.content:""` + finish_reason instead of
	// putting finish_reason on the last content chunk (sambanova).
	SeparateFinishChunk bool
	// ExtraFields adds unknown keys to every chunk and response (together, cerebras).
	ExtraFields bool
	// StrictRoles applies the Mistral v0.1/v0.2 chat template: roles must alternate
	// user/assistant starting with user, and no system role (422 template error).
	StrictRoles bool
	// ContextErrorTGI answers an over-long prompt with TGI's 422 validation error
	// instead of the OpenAI/vLLM 400 context_length_exceeded body.
	ContextErrorTGI bool
	// ResponseModel, when set, is the `model` reported in responses (providers report
	// their own names).
	ResponseModel string
	// Reply computes the answer text; default DefaultReply.
	Reply func(ChatRequest) string
	// Created is the `created` timestamp in every chunk (default 1760000000).
	Created int64
}

// DefaultReply is the fake's answer: it names the last user message and how many
// messages the model saw, so a test can tell which question was answered and with which
// history.
func DefaultReply(req ChatRequest) string {
	n := len(req.Messages)
	return "You said: " + req.LastUser() + " (seen " + itoa(n) + " messages)"
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
