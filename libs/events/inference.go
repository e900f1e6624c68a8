package events

import "time"

// Model providers.
const (
	ProviderHuggingFace = "huggingface"
	ProviderOpenAI      = "openai"
	ProviderOllama      = "ollama"
	ProviderDemo        = "demo"
)

// Model is one model a chat can use.
type Model struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Provider      string `json:"provider"`
	Default       bool   `json:"default"`
	ContextLength int    `json:"context_length,omitempty"`
}

// ModelsReply lists the configured models, the default first.
type ModelsReply struct {
	Models []Model `json:"models"`
}

// Generation event types, as relayed to clients as SSE event names.
const (
	GenDelta   = "delta"
	GenReset   = "reset"
	GenWaiting = "waiting"
	GenDone    = "done"
	GenError   = "error"
)

// Reasons carried by a waiting event.
const (
	WaitRateLimited  = "rate_limited"
	WaitModelLoading = "model_loading"
	WaitOverloaded   = "overloaded"
	WaitQueued       = "queued"
)

// GenerationEvent is one event on an answer's generation subject. Seq increases by one
// per event of the message across every attempt, so a client can resume after any seq.
type GenerationEvent struct {
	Type    string     `json:"type"`
	Seq     int64      `json:"seq"`
	Text    string     `json:"text,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	RetryAt *time.Time `json:"retry_at,omitempty"`
	Message *Message   `json:"message,omitempty"`
	Error   *Error     `json:"error,omitempty"`
}
