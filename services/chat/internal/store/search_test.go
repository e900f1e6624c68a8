package store

import "testing"

// TestMatcher: the scan path must match what the full-text path matches: indexable
// terms as word prefixes, the others anywhere, every term in the one text.
func TestMatcher(t *testing.T) {
	rules := ftsRules{minLen: 3, maxLen: 84, stopwords: map[string]bool{"the": true}}
	cases := []struct {
		terms []string
		text  string
		want  bool
	}{
		{[]string{"quokka"}, "Quokka facts", true},
		{[]string{"quok"}, "about (quokkas)", true},
		{[]string{"okka"}, "quokka", false},         // indexed: word prefix only
		{[]string{"my"}, "a dummy text", true},      // too short: anywhere, as LIKE
		{[]string{"the"}, "breathe", true},          // a stopword: anywhere, as LIKE
		{[]string{"example"}, "my_example", false},  // _ belongs to the word
		{[]string{"example"}, "über-example", true}, // - separates words
		{[]string{"wombat", "paris"}, "wombat in Paris", true},
		{[]string{"wombat", "paris"}, "wombat only", false},
		{[]string{"café"}, "Un CAFÉ noir", true},
		{[]string{"exam"}, "reexamine, then exams", true}, // the second occurrence starts a word
	}
	for _, c := range cases {
		if got := newMatcher(rules, c.terms).match(c.text); got != c.want {
			t.Errorf("match(%v, %q) = %v, want %v", c.terms, c.text, got, c.want)
		}
	}
	if newMatcher(rules, []string{"go", "the"}).indexed() {
		t.Error("short words and stopwords alone cannot use the index")
	}
	if !newMatcher(rules, []string{"go", "wombat"}).indexed() {
		t.Error("one indexable word is enough for the index")
	}
}
