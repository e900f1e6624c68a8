package app

import (
	"fmt"
	"strings"

	"github.com/parley-chat/parley/libs/events"
)

// perMessageTokens covers the chat template's tokens around each message.
const perMessageTokens = 4

// EstimateTokens is a deliberately pessimistic token count: an ASCII byte is a third of
// a token (real tokenizers average about four), any other character a whole token, plus
// the template's overhead per message.
func EstimateTokens(s string) int {
	ascii, other := 0, 0
	for _, r := range s {
		if r < 128 {
			ascii++
		} else {
			other++
		}
	}
	return (ascii+2)/3 + other + perMessageTokens
}

// Prompt is what the model is sent for one answer.
type Prompt struct {
	Messages []events.Turn
	// Dropped is how many of the conversation's turns did not fit.
	Dropped int
	// Tokens is the estimated size of Messages.
	Tokens int
}

// TooLongError says the newest user message alone does not fit; it wraps
// ErrContextTooLong.
type TooLongError struct {
	Need, Budget int
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("need about %d tokens, budget %d: %v", e.Need, e.Budget, ErrContextTooLong)
}

func (e *TooLongError) Unwrap() error { return ErrContextTooLong }

// BuildPrompt turns a chat's history into the messages for the model, fitted into
// budget estimated tokens: it drops the oldest turns first, never cuts a message, and
// always keeps the system prompt and the newest user message (with anything after it).
// Empty turns are skipped and of consecutive turns of one role only the later kept, so roles alternate
// user/assistant starting with user; with strict set (templates that refuse a system
// role) the system prompt is folded into the first user message.
func BuildPrompt(system string, turns []events.Turn, budget int, strict bool) (Prompt, error) {
	norm := normalize(turns)
	lastUser := -1
	for i := len(norm) - 1; i >= 0; i-- {
		if norm[i].Role == events.RoleUser {
			lastUser = i
			break
		}
	}
	if lastUser < 0 {
		return Prompt{}, ErrNoUserMessage
	}
	systemTokens := 0
	if system != "" {
		systemTokens = EstimateTokens(system)
	}
	sizes := make([]int, len(norm))
	total := systemTokens
	for i, t := range norm {
		sizes[i] = EstimateTokens(t.Content)
		total += sizes[i]
	}
	start := 0
	for total > budget && start < lastUser {
		// Drop the oldest turn, and any assistant turn it leaves at the front, so the
		// kept history still starts with a user turn.
		total -= sizes[start]
		start++
		for start < lastUser && norm[start].Role != events.RoleUser {
			total -= sizes[start]
			start++
		}
	}
	if total > budget {
		return Prompt{}, &TooLongError{Need: total, Budget: budget}
	}
	kept := append([]events.Turn(nil), norm[start:]...)
	var msgs []events.Turn
	switch {
	case system == "":
		msgs = kept
	case strict:
		kept[0].Content = system + "\n\n" + kept[0].Content
		msgs = kept
	default:
		msgs = append([]events.Turn{{Role: events.RoleSystem, Content: system}}, kept...)
	}
	return Prompt{Messages: msgs, Dropped: start, Tokens: total}, nil
}

// normalize drops empty and unknown-role turns and leading assistant turns; of
// consecutive turns of one role (a question whose answer failed, then a new one) only
// the later is kept, so the model answers the question actually asked.
func normalize(turns []events.Turn) []events.Turn {
	var out []events.Turn
	for _, t := range turns {
		if strings.TrimSpace(t.Content) == "" {
			continue
		}
		if t.Role != events.RoleUser && t.Role != events.RoleAssistant {
			continue
		}
		if len(out) == 0 && t.Role != events.RoleUser {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Role == t.Role {
			out[n-1] = t
			continue
		}
		out = append(out, t)
	}
	return out
}
