package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// Title generation tuning.
const (
	// titleMaxTokens is the length asked of the model: a title of eight words, with
	// room for a model that adds a label or quotes.
	titleMaxTokens = 32
	// titleMaxReply bounds the text kept from a model that keeps talking.
	titleMaxReply = 1000
	// DefaultTitleTimeout bounds one title request.
	DefaultTitleTimeout = 20 * time.Second
	// titleAttempts and titleMaxRetryWait shape the one quick retry of a passing
	// provider failure.
	titleAttempts     = 2
	titleMaxRetryWait = 5 * time.Second
)

// titleInstruction is sent as a single user message (templates that refuse a system
// role accept it too).
const titleInstruction = "Write a short title, at most 8 words, for the conversation below. " +
	"Use the language of the conversation. Reply with the title only: no quotes, no label, no final punctuation.\n\n"

// TitleWriter asks a chat's own model for a short title of its first exchange.
type TitleWriter struct {
	Catalog *Catalog
	// Timeout bounds one request (DefaultTitleTimeout when 0).
	Timeout time.Duration
}

// Title returns a cleaned title (events.CleanTitle) and the model that wrote it. The
// offline demo model writes no titles: it returns "" and no error. Failures are
// *events.Error.
func (w *TitleWriter) Title(ctx context.Context, req events.TitleRequest) (title, model string, err error) {
	entry, _, found := w.Catalog.Resolve(req.Model)
	if !found {
		return "", "", events.Errorf(events.CodeModelNotFound, "No model is configured on the inference workers.")
	}
	if entry.Model.Provider == events.ProviderDemo {
		return "", entry.Model.ID, nil
	}
	if strings.TrimSpace(req.Question) == "" {
		return "", entry.Model.ID, events.Errorf(events.CodeInvalidInput, "There is no question to name the chat after.")
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultTitleTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prompt := titleInstruction + "User: " + req.Question
	if strings.TrimSpace(req.Answer) != "" {
		prompt += "\n\nAssistant: " + req.Answer
	}
	var text strings.Builder
	for attempt := 1; ; attempt++ {
		text.Reset()
		err = w.stream(ctx, entry, prompt, &text)
		var pe *ProviderError
		if err == nil || attempt == titleAttempts || !errors.As(err, &pe) || !pe.Retryable {
			break
		}
		// One quick retry of a passing failure (503, a dropped connection), when the
		// provider's own hint fits the time left.
		wait := max(pe.RetryAfter, time.Second)
		if dl, ok := ctx.Deadline(); wait > titleMaxRetryWait || ok && time.Until(dl) < wait+time.Second {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	got := events.CleanTitle(text.String())
	if err != nil {
		var pe *ProviderError
		switch {
		case errors.As(err, &pe):
			return "", entry.Model.ID, &events.Error{Code: pe.Code, Message: pe.Message}
		case ctx.Err() != nil:
			return "", entry.Model.ID, events.Errorf(events.CodeTimeout, "The model did not write a title in time.")
		}
		return "", entry.Model.ID, events.Errorf(events.CodeProviderError, "The model failed to write a title.")
	}
	if got == "" {
		return "", entry.Model.ID, events.Errorf(events.CodeProviderError, "The model's reply held no usable title.")
	}
	return got, entry.Model.ID, nil
}

// stream asks the model once; it stops reading at the end of the first line of text
// (all a title needs), which is not an error.
func (w *TitleWriter) stream(ctx context.Context, entry Entry, prompt string, text *strings.Builder) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	_, err := entry.Provider.Stream(sctx, ChatRequest{
		Model:     entry.Upstream,
		Messages:  []events.Turn{{Role: events.RoleUser, Content: prompt}},
		MaxTokens: titleMaxTokens,
	}, func(t string) {
		if text.Len() < titleMaxReply {
			text.WriteString(t)
		}
		if strings.Contains(strings.TrimSpace(text.String()), "\n") || text.Len() >= titleMaxReply {
			stop()
		}
	})
	if err != nil && sctx.Err() != nil && ctx.Err() == nil && events.CleanTitle(text.String()) != "" {
		return nil // we stopped it: the first line is in
	}
	return err
}
