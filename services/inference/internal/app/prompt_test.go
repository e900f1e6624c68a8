package app_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

func u(s string) events.Turn { return events.Turn{Role: events.RoleUser, Content: s} }
func a(s string) events.Turn { return events.Turn{Role: events.RoleAssistant, Content: s} }
func sys(s string) events.Turn {
	return events.Turn{Role: events.RoleSystem, Content: s}
}

// words makes a message of n estimated tokens (3 ASCII bytes a token, plus the
// per-message overhead of 4).
func words(tag string, tokens int) string {
	return tag + strings.Repeat("x", (tokens-4)*3-len(tag))
}

func TestBuildPrompt(t *testing.T) {
	q1, r1 := words("q1", 100), words("r1", 100)
	q2, r2 := words("q2", 100), words("r2", 100)
	q3 := words("q3", 100)
	system := words("sys", 50)
	tests := []struct {
		name    string
		system  string
		turns   []events.Turn
		budget  int
		strict  bool
		want    []events.Turn
		dropped int
		wantErr error
	}{
		{name: "fits", system: system, turns: []events.Turn{u(q1), a(r1), u(q2)}, budget: 1000,
			want: []events.Turn{sys(system), u(q1), a(r1), u(q2)}},
		{name: "drops oldest pair", system: system, turns: []events.Turn{u(q1), a(r1), u(q2), a(r2), u(q3)}, budget: 350,
			want: []events.Turn{sys(system), u(q2), a(r2), u(q3)}, dropped: 2},
		{name: "keeps only newest question", system: system, turns: []events.Turn{u(q1), a(r1), u(q2), a(r2), u(q3)}, budget: 160,
			want: []events.Turn{sys(system), u(q3)}, dropped: 4},
		{name: "exact fit", turns: []events.Turn{u(q1), a(r1), u(q2)}, budget: 300,
			want: []events.Turn{u(q1), a(r1), u(q2)}},
		{name: "one token short drops a pair", turns: []events.Turn{u(q1), a(r1), u(q2)}, budget: 299,
			want: []events.Turn{u(q2)}, dropped: 2},
		{name: "newest question alone too long", system: system, turns: []events.Turn{u(q1), a(r1), u(q2)}, budget: 149,
			wantErr: app.ErrContextTooLong},
		{name: "strict folds system prompt", system: "Be brief.", turns: []events.Turn{u("hi"), a("hello"), u("bye")}, budget: 1000, strict: true,
			want: []events.Turn{u("Be brief.\n\nhi"), a("hello"), u("bye")}},
		{name: "unanswered question replaced by the newer one", turns: []events.Turn{u("first"), a("ok"), u("lost"), u("again")}, budget: 1000,
			want: []events.Turn{u("first"), a("ok"), u("again")}},
		{name: "leading assistant and empty turns dropped", turns: []events.Turn{a("greeting"), u("q"), a(""), u(" "), a("r"), u("q2")}, budget: 1000,
			want: []events.Turn{u("q"), a("r"), u("q2")}},
		{name: "no user message", turns: []events.Turn{a("only me")}, budget: 1000, wantErr: app.ErrNoUserMessage},
		{name: "non-ascii counts a token a character", turns: []events.Turn{u(strings.Repeat("é", 100))}, budget: 103,
			wantErr: app.ErrContextTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := app.BuildPrompt(tt.system, tt.turns, tt.budget, tt.strict)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got.Messages); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if got.Dropped != tt.dropped {
				t.Errorf("dropped = %d, want %d", got.Dropped, tt.dropped)
			}
			if got.Tokens > tt.budget {
				t.Errorf("tokens %d over budget %d", got.Tokens, tt.budget)
			}
		})
	}
}
