package app

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parley-chat/parley/libs/events"
)

// scriptedProvider answers each call with the next reply (text chunks or an error).
type scriptedProvider struct {
	replies []any // []string chunks or error
	calls   []ChatRequest
}

func (p *scriptedProvider) Stream(ctx context.Context, req ChatRequest, onDelta func(string)) (ChatResult, error) {
	p.calls = append(p.calls, req)
	r := p.replies[0]
	p.replies = p.replies[1:]
	if err, ok := r.(error); ok {
		return ChatResult{}, err
	}
	for _, chunk := range r.([]string) {
		if ctx.Err() != nil {
			return ChatResult{}, ctx.Err()
		}
		onDelta(chunk)
	}
	return ChatResult{FinishReason: "stop"}, nil
}

func TestTitleWriter(t *testing.T) {
	busy := &ProviderError{Code: events.CodeProviderUnavailable, Retryable: true, Message: "busy"}
	refused := &ProviderError{Code: events.CodeProviderInvalid, Message: "refused"}
	cases := []struct {
		name     string
		replies  []any
		want     string
		wantCode string
		calls    int
	}{
		{"clean", []any{[]string{"Rust ", "borrow checker"}}, "Rust borrow checker", "", 1},
		{"chatty, stops at the first line", []any{[]string{"Title: \"Rust", " borrows.\"\n", "I hope", " this helps"}}, "Rust borrows", "", 1},
		{"passing failure retried once", []any{busy, []string{"Second try"}}, "Second try", "", 2},
		{"passing failure twice", []any{busy, busy}, "", events.CodeProviderUnavailable, 2},
		{"refused for good", []any{refused}, "", events.CodeProviderInvalid, 1},
		{"empty reply", []any{[]string{"  \n"}}, "", events.CodeProviderError, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &scriptedProvider{replies: c.replies}
			w := &TitleWriter{Catalog: NewCatalog(NewEntry("m", "M", events.ProviderHuggingFace, 0, p))}
			got, model, err := w.Title(context.Background(), events.TitleRequest{Model: "m", Question: "How do borrows work?", Answer: "Like this."})
			var e *events.Error
			switch {
			case c.wantCode == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.wantCode != "" && (!errors.As(err, &e) || e.Code != c.wantCode):
				t.Fatalf("error %v, want code %s", err, c.wantCode)
			}
			if got != c.want || model != "m" || len(p.calls) != c.calls {
				t.Errorf("title %q by %q after %d calls, want %q after %d", got, model, len(p.calls), c.want, c.calls)
			}
			for _, call := range p.calls {
				if len(call.Messages) != 1 || call.Messages[0].Role != events.RoleUser || call.MaxTokens > 64 ||
					!strings.Contains(call.Messages[0].Content, "User: How do borrows work?\n\nAssistant: Like this.") {
					t.Errorf("request %+v", call)
				}
			}
		})
	}

	t.Run("the demo model writes none", func(t *testing.T) {
		p := &scriptedProvider{}
		w := &TitleWriter{Catalog: NewCatalog(NewEntry(DemoModelID, "Demo", events.ProviderDemo, 0, p))}
		got, _, err := w.Title(context.Background(), events.TitleRequest{Model: DemoModelID, Question: "hi"})
		if got != "" || err != nil || len(p.calls) != 0 {
			t.Errorf("demo: %q %v after %d calls", got, err, len(p.calls))
		}
	})
}
