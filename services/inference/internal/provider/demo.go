package provider

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// DemoName is the display name of the offline demo model.
const DemoName = "Offline demo model (no real model configured)"

// Demo is the offline demo model: it needs no network, says what it is, echoes a bit
// of the question and explains how to configure a real model.
type Demo struct {
	// WordDelay is the pause between words, so the answer visibly streams.
	WordDelay time.Duration
}

// DemoReply is the demo model's answer to a conversation.
func DemoReply(msgs []events.Turn) string {
	last := ""
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == events.RoleUser {
			last = msgs[i].Content
			break
		}
	}
	last = strings.Join(strings.Fields(last), " ")
	if utf8.RuneCountInString(last) > 120 {
		last = string([]rune(last)[:120]) + "…"
	}
	return "Hello! I am the offline demo model: no real language model is configured on this server, " +
		"so I can only echo you. You wrote: \"" + last + "\".\n\n" +
		"To talk to a real model, set HF_API_TOKEN to a HuggingFace access token (allowed to call " +
		"Inference Providers), or set OPENAI_BASE_URL to an OpenAI-compatible server such as Ollama " +
		"(http://localhost:11434/v1) or vLLM, then restart the inference workers."
}

// Stream implements app.Provider.
func (d Demo) Stream(ctx context.Context, req app.ChatRequest, onDelta func(string)) (app.ChatResult, error) {
	text := DemoReply(req.Messages)
	words := strings.SplitAfter(text, " ")
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i, w := range words {
		if i > 0 && d.WordDelay > 0 {
			t.Reset(d.WordDelay)
			select {
			case <-ctx.Done():
				return app.ChatResult{}, ctx.Err()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return app.ChatResult{}, ctx.Err()
		}
		onDelta(w)
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += app.EstimateTokens(m.Content)
	}
	return app.ChatResult{Model: app.DemoModelID, FinishReason: "stop",
		Usage: &events.Usage{PromptTokens: prompt, CompletionTokens: len(words)}}, nil
}
