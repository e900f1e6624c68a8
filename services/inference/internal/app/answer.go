package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/parley-chat/parley/libs/events"
)

// Answerer writes answers: it picks the model, fits the conversation into its context
// window, streams from the provider and retries transient failures with backoff.
type Answerer struct {
	Catalog *Catalog
	// MaxTokens is the answer length asked of the model.
	MaxTokens int
	// RetryMaxWait bounds the time spent retrying one answer.
	RetryMaxWait time.Duration
	// RetryBase and RetryCap shape the exponential backoff (with jitter).
	RetryBase time.Duration
	RetryCap  time.Duration
	Log       *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Job is one answer to write.
type Job struct {
	MessageID    string
	Conversation events.ConversationReply
}

// Outcome is how an answer ended: Status is events.StatusComplete, StatusCancelled
// (ctx was cancelled; Content is the text so far) or StatusFailed (Err says why).
type Outcome struct {
	Status   string
	Content  string
	Model    string
	Usage    *events.Usage
	Err      *events.Error
	Attempts int
}

func (a *Answerer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Answer writes one answer. It returns when the answer is complete, failed for good,
// or ctx is cancelled.
func (a *Answerer) Answer(ctx context.Context, job Job, sink Sink) Outcome {
	log := a.Log.With("message_id", job.MessageID)
	entry, exact, found := a.Catalog.Resolve(job.Conversation.Model)
	if !found {
		return Outcome{Status: events.StatusFailed, Model: job.Conversation.Model, Err: events.Errorf(events.CodeModelNotFound,
			"No model is configured on the inference workers.")}
	}
	if !exact {
		log.Warn("chat model not configured, using the default", "chat_model", job.Conversation.Model, "model", entry.Model.ID)
	}
	out := Outcome{Model: entry.Model.ID}
	maxTokens := a.MaxTokens
	if maxTokens <= 0 {
		maxTokens = 1024
	}
	ctxLen := entry.Model.ContextLength
	if ctxLen <= 0 {
		ctxLen = DefaultContextLength
	}
	if maxTokens > ctxLen/2 {
		// A small context window still leaves room for the conversation.
		maxTokens = ctxLen / 2
	}
	prompt, err := BuildPrompt(job.Conversation.SystemPrompt, job.Conversation.Turns, ctxLen-maxTokens, entry.StrictRoles)
	if err != nil {
		out.Status = events.StatusFailed
		var tl *TooLongError
		switch {
		case errors.As(err, &tl):
			out.Err = events.Errorf(events.CodeContextTooLong,
				"Your message is too long for %s: it needs about %d tokens, and the model has room for about %d. Please shorten it.",
				entry.Model.Name, tl.Need, tl.Budget)
		default:
			out.Err = events.Errorf(events.CodeProviderInvalid, "There is no question to answer in this chat.")
		}
		return out
	}
	if prompt.Dropped > 0 {
		log.Info("conversation trimmed to fit the context window", "dropped_turns", prompt.Dropped, "model", entry.Model.ID)
	}
	req := ChatRequest{Model: entry.Upstream, Messages: prompt.Messages, MaxTokens: maxTokens}

	deadline := a.now().Add(a.RetryMaxWait)
	base, capped := a.RetryBase, a.RetryCap
	if base <= 0 {
		base = time.Second
	}
	if capped <= 0 {
		capped = 30 * time.Second
	}
	exp := retry.WithCappedDuration(capped, retry.WithJitterPercent(20, retry.NewExponential(base)))
	var (
		text    strings.Builder
		dirty   bool
		lastErr *ProviderError
		result  ChatResult
	)
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		d, _ := exp.Next()
		if lastErr != nil && lastErr.RetryAfter > d {
			d = lastErr.RetryAfter
		}
		at := a.now().Add(d)
		if at.After(deadline) {
			return 0, true
		}
		log.Info("provider busy, retrying", "model", entry.Model.ID, "code", lastErr.Code, "status", lastErr.Status,
			"reason", lastErr.Reason, "wait", d.String(), "attempt", out.Attempts)
		sink.Waiting(ctx, lastErr.Reason, at)
		return d, false
	})
	err = retry.Do(ctx, backoff, func(ctx context.Context) error {
		out.Attempts++
		if dirty {
			sink.Reset(ctx)
			text.Reset()
			dirty = false
		}
		res, err := entry.Provider.Stream(ctx, req, func(t string) {
			if t == "" {
				return
			}
			text.WriteString(t)
			dirty = true
			sink.Delta(ctx, t)
		})
		if err == nil {
			result = res
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pe *ProviderError
		if !errors.As(err, &pe) {
			pe = &ProviderError{Code: events.CodeProviderError, Message: "The model provider failed in an unexpected way."}
			log.Error("provider failed", "err", err)
		}
		lastErr = pe
		if pe.Retryable {
			return retry.RetryableError(pe)
		}
		return pe
	})
	out.Content = text.String()
	switch {
	case err == nil:
		out.Status = events.StatusComplete
		out.Usage = result.Usage
	case ctx.Err() != nil:
		out.Status = events.StatusCancelled
	default:
		out.Status = events.StatusFailed
		var pe *ProviderError
		if !errors.As(err, &pe) {
			pe = &ProviderError{Code: events.CodeProviderError, Message: "The model provider failed in an unexpected way."}
		}
		msg := pe.Message
		if pe.Retryable && out.Attempts > 1 {
			msg = fmt.Sprintf("%s Gave up after %d attempts.", msg, out.Attempts)
		} else if pe.Retryable && pe.RetryAfter > 0 {
			msg = fmt.Sprintf("%s It asked to wait %s, longer than we wait for an answer.", msg, pe.RetryAfter.Round(time.Second))
		}
		out.Err = &events.Error{Code: pe.Code, Message: msg, RetryAfter: int(pe.RetryAfter.Round(time.Second) / time.Second)}
		log.Warn("answer failed", "model", entry.Model.ID, "code", pe.Code, "status", pe.Status, "attempts", out.Attempts)
	}
	return out
}
