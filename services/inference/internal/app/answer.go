package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/parley-chat/parley/libs/events"
)

// Answerer writes answers: it picks the model, fits the conversation into its context
// window, streams from the provider and retries transient failures with backoff. A
// wait longer than ParkAfter is not waited here: the answer is handed back (Outcome.Park)
// so that the caller can free its slot and retry later.
type Answerer struct {
	Catalog *Catalog
	// MaxTokens is the answer length asked of the model.
	MaxTokens int
	// RetryMaxWait bounds the time spent retrying one answer, from its first provider
	// failure, across deliveries (Job.RetrySince).
	RetryMaxWait time.Duration
	// RetryBase and RetryCap shape the exponential backoff (with jitter).
	RetryBase time.Duration
	RetryCap  time.Duration
	// ParkAfter is the longest wait done while holding the answer; a longer one parks
	// it (0 = never park).
	ParkAfter time.Duration
	Log       *slog.Logger
	// Observer receives measurements (none when nil).
	Observer Observer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Job is one answer to write.
type Job struct {
	MessageID    string
	Conversation events.ConversationReply
	// Attempts is how many provider calls earlier deliveries made for this answer;
	// RetrySince when its retry budget started (zero if it never had to wait).
	Attempts   int
	RetrySince time.Time
}

// Park says the answer should wait outside the worker: for Wait (until RetryAt),
// because of Reason (events.Wait*).
type Park struct {
	Reason  string
	Wait    time.Duration
	RetryAt time.Time
	// Code is the provider error that made it wait.
	Code string
}

// Outcome is how an answer ended: Status is events.StatusComplete, StatusCancelled
// (ctx was cancelled; Content is the text so far) or StatusFailed (Err says why); or
// Status is empty and Park is set: the answer must be retried later.
type Outcome struct {
	Status  string
	Content string
	Model   string
	Usage   *events.Usage
	Err     *events.Error
	Park    *Park
	// Attempts counts provider calls across deliveries; RetrySince is when the retry
	// budget started (zero when no call failed).
	Attempts   int
	RetrySince time.Time
}

func (a *Answerer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Answerer) observer() Observer {
	if a.Observer == nil {
		return nopObserver{}
	}
	return a.Observer
}

// backoff is the wait before provider call n+1: RetryBase doubled per call already
// made, capped at RetryCap, with ±20% jitter, and never less than the provider's hint.
func (a *Answerer) backoff(n int, hint time.Duration) time.Duration {
	base, capped := a.RetryBase, a.RetryCap
	if base <= 0 {
		base = time.Second
	}
	if capped <= 0 {
		capped = 30 * time.Second
	}
	d := base
	for i := 1; i < n && d < capped; i++ {
		d *= 2
	}
	d = min(d, capped)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return max(d, hint)
}

// Answer writes one answer. It returns when the answer is complete, failed for good,
// must be parked, or ctx is cancelled.
func (a *Answerer) Answer(ctx context.Context, job Job, sink Sink) Outcome {
	// The *Context calls add the request id the context carries (events.ContextHandler).
	log := a.Log.With("message_id", job.MessageID)
	obs := a.observer()
	entry, exact, found := a.Catalog.Resolve(job.Conversation.Model)
	if !found {
		log.ErrorContext(ctx, "answer failed", "code", events.CodeModelNotFound, "reason", "no model configured")
		return Outcome{Status: events.StatusFailed, Model: job.Conversation.Model, Err: events.Errorf(events.CodeModelNotFound,
			"No model is configured on the inference workers.")}
	}
	if !exact {
		log.WarnContext(ctx, "chat model not configured, using the default", "chat_model", job.Conversation.Model, "model", entry.Model.ID)
	}
	out := Outcome{Model: entry.Model.ID, Attempts: job.Attempts, RetrySince: job.RetrySince}
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
		log.WarnContext(ctx, "answer failed", "model", entry.Model.ID, "code", out.Err.Code, "reason", err.Error())
		return out
	}
	if prompt.Dropped > 0 {
		log.InfoContext(ctx, "conversation trimmed to fit the context window", "dropped_turns", prompt.Dropped, "model", entry.Model.ID)
	}
	req := ChatRequest{Model: entry.Upstream, Messages: prompt.Messages, MaxTokens: maxTokens}

	var (
		text    strings.Builder
		dirty   bool
		lastErr *ProviderError
		result  ChatResult
		park    *Park
		gaveUp  time.Duration // the wait that did not fit the budget
	)
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		now := a.now()
		if out.RetrySince.IsZero() {
			out.RetrySince = now
		}
		d := a.backoff(out.Attempts, lastErr.RetryAfter)
		at := now.Add(d)
		if at.After(out.RetrySince.Add(a.RetryMaxWait)) {
			gaveUp = d
			return 0, true
		}
		if a.ParkAfter > 0 && d > a.ParkAfter {
			park = &Park{Reason: lastErr.Reason, Wait: d, RetryAt: at, Code: lastErr.Code}
			return 0, true
		}
		log.InfoContext(ctx, "provider busy, retrying", "model", entry.Model.ID, "code", lastErr.Code, "status", lastErr.Status,
			"reason", lastErr.Reason, "wait", d.String(), "attempt", out.Attempts)
		sink.Waiting(ctx, lastErr.Reason, at)
		return d, false
	})
	err = retry.Do(ctx, backoff, func(ctx context.Context) error {
		out.Attempts++
		sink.Attempt(ctx, out.Attempts, out.RetrySince)
		if dirty {
			sink.Reset(ctx)
			text.Reset()
			dirty = false
		}
		started := a.now()
		var first time.Time
		chunks := 0
		res, err := entry.Provider.Stream(ctx, req, func(t string) {
			if t == "" {
				return
			}
			if chunks == 0 {
				first = a.now()
				obs.FirstToken(entry.Model.ID, first.Sub(started))
			}
			chunks++
			text.WriteString(t)
			dirty = true
			sink.Delta(ctx, t)
		})
		if err == nil {
			result = res
			if chunks > 0 {
				n := chunks
				if res.Usage != nil && res.Usage.CompletionTokens > 0 {
					n = res.Usage.CompletionTokens
				}
				obs.Generated(entry.Model.ID, n, a.now().Sub(first))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pe *ProviderError
		if !errors.As(err, &pe) {
			pe = &ProviderError{Code: events.CodeProviderError, Message: "The model provider failed in an unexpected way."}
			log.ErrorContext(ctx, "provider failed", "err", err)
		}
		obs.ProviderError(entry.Model.ID, pe.Code)
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
	case park != nil:
		out.Park = park
		log.InfoContext(ctx, "provider asks for a long wait, parking the answer", "model", entry.Model.ID, "code", park.Code,
			"reason", park.Reason, "wait", park.Wait.String(), "attempt", out.Attempts)
	default:
		out.Status = events.StatusFailed
		var pe *ProviderError
		if !errors.As(err, &pe) {
			pe = &ProviderError{Code: events.CodeProviderError, Message: "The model provider failed in an unexpected way."}
		}
		msg := pe.Message
		switch {
		case !pe.Retryable:
		case pe.RetryAfter > 0 && gaveUp >= a.RetryMaxWait:
			msg = fmt.Sprintf("%s It asked to wait %s, longer than we wait for an answer (%s).", msg,
				pe.RetryAfter.Round(time.Second), a.RetryMaxWait)
		default:
			msg = fmt.Sprintf("%s Gave up after %d attempts over %s (the limit is %s).", msg, out.Attempts,
				a.now().Sub(out.RetrySince).Round(time.Second), a.RetryMaxWait)
		}
		out.Err = &events.Error{Code: pe.Code, Message: msg, RetryAfter: int(pe.RetryAfter.Round(time.Second) / time.Second)}
		log.WarnContext(ctx, "answer failed", "model", entry.Model.ID, "code", pe.Code, "status", pe.Status, "attempts", out.Attempts,
			"retryable", pe.Retryable)
	}
	return out
}
