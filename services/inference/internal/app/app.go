// Package app holds the inference use cases: the model catalog, fitting a conversation
// into a model's context window, and writing one answer with retries. It knows nothing
// of NATS or HTTP: providers and the place deltas go are interfaces implemented by the
// provider and transport packages.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// ErrContextTooLong means the newest user message alone does not fit the model's
// context window.
var ErrContextTooLong = errors.New("conversation does not fit the context window")

// ErrNoUserMessage means the conversation has no user message to answer.
var ErrNoUserMessage = errors.New("conversation has no user message")

// ProviderError is a failed provider call, already mapped to a stable code
// (events.Code*) and a message a person can read. It never carries the API token.
type ProviderError struct {
	Code    string
	Message string
	// Status is the HTTP status (or the one reported inside a stream); 0 for a
	// connection failure.
	Status int
	// Retryable says a later attempt may succeed (429, 502-504, connection errors, a
	// cut stream).
	Retryable bool
	// RetryAfter is the provider's own hint (Retry-After, RateLimit t=, estimated_time).
	RetryAfter time.Duration
	// Reason is the waiting reason to show while waiting for a retry
	// (events.WaitRateLimited, WaitModelLoading, WaitOverloaded).
	Reason string
}

// Error implements error.
func (e *ProviderError) Error() string {
	return fmt.Sprintf("provider error %s (status %d): %s", e.Code, e.Status, e.Message)
}

// ChatRequest is what a provider is asked to answer.
type ChatRequest struct {
	// Model is the provider's model id.
	Model     string
	Messages  []events.Turn
	MaxTokens int
}

// ChatResult is how a provider's answer ended.
type ChatResult struct {
	// Model is the model name the provider reported (informational only).
	Model        string
	Usage        *events.Usage
	FinishReason string
}

// Provider streams one chat completion, calling onDelta with each piece of text in
// order. Errors are *ProviderError, or the context's error when ctx was cancelled.
type Provider interface {
	Stream(ctx context.Context, req ChatRequest, onDelta func(text string)) (ChatResult, error)
}

// Sink receives an answer's progress. Implementations publish it; failures to publish
// are theirs to log (the stored message is the source of truth).
type Sink interface {
	Delta(ctx context.Context, text string)
	// Reset says the text so far is void: a new attempt starts from scratch.
	Reset(ctx context.Context)
	// Waiting says the answer waits for a retry until retryAt.
	Waiting(ctx context.Context, reason string, retryAt time.Time)
	// Attempt says provider call n of the answer (counted across deliveries) starts;
	// retrySince is when its retry budget started (zero before the first wait). The
	// transport records both so that a redelivery can resume the count.
	Attempt(ctx context.Context, n int, retrySince time.Time)
}

// Observer receives measurements of provider calls (metrics). Its methods must be
// cheap and safe for concurrent use.
type Observer interface {
	// FirstToken reports the time from the start of a provider call to its first text.
	FirstToken(model string, d time.Duration)
	// Generated reports a finished call: tokens generated (the provider's count, else
	// the number of text chunks) and the time from the first token to the end.
	Generated(model string, tokens int, d time.Duration)
	// ProviderError reports a failed provider call by its code (events.Code*).
	ProviderError(model, code string)
}

type nopObserver struct{}

func (nopObserver) FirstToken(string, time.Duration)     {}
func (nopObserver) Generated(string, int, time.Duration) {}
func (nopObserver) ProviderError(string, string)         {}
