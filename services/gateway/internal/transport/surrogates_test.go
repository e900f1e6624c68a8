package transport

import "testing"

func TestHasLoneSurrogate(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`{"content":"plain"}`, false},
		{`{"content":"\u00e9\u4e2d"}`, false},
		{`{"content":"\ud83d\ude00"}`, false}, // a valid pair (an emoji)
		{`{"content":"\uD83D\uDE00"}`, false},
		{`{"content":"\\ud800"}`, false}, // an escaped backslash, then text
		{`{"content":"\"\ud800"}`, true},
		{`{"content":"\ud800"}`, true},
		{`{"content":"a\udfffb"}`, true},
		{`{"content":"\ud800\u0041"}`, true},
		{`{"content":"\ud800x"}`, true},
		{`{"content":"\ud800`, true},
		{`{"content":"\u12"}`, false}, // malformed: left to the decoder
	}
	for _, tt := range tests {
		if got := hasLoneSurrogate([]byte(tt.in)); got != tt.want {
			t.Errorf("hasLoneSurrogate(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
