package events

import "testing"

func TestCleanTitle(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Rust borrow checker", "Rust borrow checker"},
		{`Title: "About the borrow checker."`, "About the borrow checker"},
		{"**Chat title:** Planning a trip to Kyoto!\nHope this helps.", "Planning a trip to Kyoto!"},
		{"\n\n# Sourdough starter tips\n", "Sourdough starter tips"},
		{"«Le pain au levain»", "Le pain au levain"},
		{"one two three four five six seven eight nine ten", "one two three four five six seven eight"},
		{"Why is the sky blue?", "Why is the sky blue?"},
		{"  'quoted'  ", "quoted"},
		{"...", ""},
		{"", ""},
		{"Title:", ""},
		{"\"\"", ""},
		{"a\x00b\tc", "a b c"},
	}
	for _, c := range cases {
		if got := CleanTitle(c.in); got != c.want {
			t.Errorf("CleanTitle(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
