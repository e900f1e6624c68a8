package app

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestProvisionalTitle(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hello", "hello"},
		{"  one two\nthree  ", "one two three"},
		{"one two three four five six seven eight nine ten", "one two three four five six seven eight"},
		{strings.Repeat("a", 70), strings.Repeat("a", 60)},
		{"short " + strings.Repeat("b", 60), "short"},
		{"Wie heißt die Hauptstadt von Österreich, bitte?", "Wie heißt die Hauptstadt von Österreich, bitte?"},
		{"   ", DefaultTitle},
	}
	for _, tt := range tests {
		if got := provisionalTitle(tt.in); got != tt.want {
			t.Errorf("provisionalTitle(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSearchTerms(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello world", []string{"hello", "world"}},
		{`+quick -fox* "brown" (x) ~y <z> @2`, []string{"quick", "fox", "brown", "x", "y", "z", "2"}},
		{"dup DUP dup", []string{"dup"}},
		{"a b c d e f g h i j", []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
		{"Größe café", []string{"größe", "café"}},
	}
	for _, tt := range tests {
		got, err := searchTerms(tt.in)
		if err != nil {
			t.Fatalf("searchTerms(%q): %v", tt.in, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("searchTerms(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	if _, err := searchTerms(strings.Repeat("x", maxQueryChars+1)); err == nil {
		t.Error("an over-long query was accepted")
	}
}

func TestCursors(t *testing.T) {
	c := ChatCursor{UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: "0190f5a4-7b8c-7def-8123-456789abcdef"}
	got, err := decodeChatCursor(encodeChatCursor(c))
	if err != nil || got == nil || !got.UpdatedAt.Equal(c.UpdatedAt) || got.ID != c.ID {
		t.Errorf("chat cursor round trip = %+v, %v", got, err)
	}
	seq, err := decodeMessageCursor(encodeMessageCursor(42))
	if err != nil || seq != 42 {
		t.Errorf("message cursor round trip = %d, %v", seq, err)
	}
	for _, bad := range []string{"x", "!!", encodeMessageCursor(1), "YzF8MXx4"} {
		var inv *InvalidInputError
		if _, err := decodeChatCursor(bad); !errors.As(err, &inv) {
			t.Errorf("decodeChatCursor(%q) = %v, want invalid input", bad, err)
		}
	}
	for _, bad := range []string{"x", encodeChatCursor(c), "bTF8LTE"} {
		var inv *InvalidInputError
		if _, err := decodeMessageCursor(bad); !errors.As(err, &inv) {
			t.Errorf("decodeMessageCursor(%q) = %v, want invalid input", bad, err)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := map[string]bool{
		"0190f5a4-7b8c-7def-8123-456789abcdef":   true,
		"":                                       false,
		"0190f5a47b8c7def8123456789abcdef":       false,
		"{0190f5a4-7b8c-7def-8123-456789abcdef}": false,
		"urn:uuid:0190f5a4-7b8c-7def-8123-456789abcdef": false,
		"0190f5a4-7b8c-7def-8123-456789abcdeg":          false,
		"1' OR '1'='1":                                  false,
	}
	for in, want := range tests {
		if got := validID(in); got != want {
			t.Errorf("validID(%q) = %v, want %v", in, got, want)
		}
	}
}
