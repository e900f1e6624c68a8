package provider

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeChunk decodes one streamed chunk into ch. A chunk is decoded once per token,
// so the usual shape (text, finish reason, usage, fields we ignore) is read by a small
// scanner that picks the few fields we use and skips the rest, without reflection.
// Anything it does not expect (an error, a key differing only in case, escapes in a
// key, invalid JSON) is left to encoding/json, which gives the same result for every
// chunk the scanner accepts.
func decodeChunk(b []byte, ch *chunk) error {
	*ch = chunk{Choices: ch.Choices[:0]} // the choices' room is reused
	sc := chunkScanner{b: b}
	if sc.chunk(ch) {
		return nil
	}
	*ch = chunk{}
	return json.Unmarshal(b, ch)
}

// chunkScanner reads a chunk; every method returns false when the fast path cannot
// decide (the caller then falls back to encoding/json).
type chunkScanner struct {
	b []byte
	i int
}

func (s *chunkScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *chunkScanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *chunkScanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// null consumes a null literal if one comes next.
func (s *chunkScanner) null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// rawString returns the bytes of the string token that comes next, quotes included,
// and whether it holds an escape.
func (s *chunkScanner) rawString() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.i
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			s.i = j + 1
			raw = s.b[start:s.i]
			return raw, escaped, !escaped || json.Valid(raw)
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// str reads a string value.
func (s *chunkScanner) str() (string, bool) {
	raw, escaped, ok := s.rawString()
	if !ok {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if !escaped && utf8.Valid(inner) {
		return string(inner), true
	}
	var out string
	if json.Unmarshal(raw, &out) != nil {
		return "", false
	}
	return out, true
}

// key reads an object key and its colon; keys with escapes are not handled.
func (s *chunkScanner) key() ([]byte, bool) {
	raw, escaped, ok := s.rawString()
	if !ok || escaped || !s.eat(':') {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

// skip passes over any value, checking that it is valid JSON.
func (s *chunkScanner) skip() bool {
	switch c := s.peek(); {
	case c == '"':
		_, _, ok := s.rawString()
		return ok
	case c == '{' || c == '[':
		start, depth := s.i, 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.rawString(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return json.Valid(s.b[start:s.i])
			}
		}
		return false
	default:
		start := s.i
		for s.i < len(s.b) && !strings.ContainsRune(",}] \t\r\n", rune(s.b[s.i])) {
			s.i++
		}
		switch tok := string(s.b[start:s.i]); tok {
		case "null", "true", "false":
			return true
		case "":
			return false
		default:
			return validNumber(tok)
		}
	}
}

// validNumber checks a JSON number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func validNumber(n string) bool {
	i := 0
	digits := func() int {
		j := i
		for i < len(n) && n[i] >= '0' && n[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(n) && n[i] == '-' {
		i++
	}
	if i < len(n) && n[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(n) && n[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(n)
}

// object calls field for each key of the object that comes next (or accepts null);
// field consumes the value.
func (s *chunkScanner) object(field func(key []byte) bool) bool {
	if s.null() {
		return true
	}
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		k, ok := s.key()
		if !ok || !field(k) {
			return false
		}
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// other skips the value of a key we do not use, unless encoding/json would match it
// to one of known (it matches keys without regard to case).
func (s *chunkScanner) other(k []byte, known ...string) bool {
	for _, name := range known {
		if bytes.EqualFold(k, []byte(name)) {
			return false
		}
	}
	return s.skip()
}

func (s *chunkScanner) optString() (*string, bool) {
	if s.null() {
		return nil, true
	}
	v, ok := s.str()
	return &v, ok
}

func (s *chunkScanner) int() (int, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || (s.b[s.i] >= '0' && s.b[s.i] <= '9')) {
		s.i++
	}
	digits := s.b[start:s.i]
	if len(digits) == 0 || (len(digits) > 1 && (digits[0] == '0' || bytes.HasPrefix(digits, []byte("-0")))) {
		return 0, false
	}
	n, err := strconv.Atoi(string(digits))
	return n, err == nil
}

var chunkKeys = []string{"object", "model", "choices", "usage", "error", "error_type", "message", "code"}

func (s *chunkScanner) chunk(ch *chunk) bool {
	ok := s.object(func(k []byte) bool {
		switch string(k) {
		case "object":
			if s.null() {
				return true
			}
			v, ok := s.str()
			ch.Object = v
			return ok
		case "model":
			if s.null() {
				return true
			}
			v, ok := s.str()
			ch.Model = v
			return ok
		case "choices":
			return s.choices(ch)
		case "usage":
			return s.usage(ch)
		default:
			// error, error_type, message, code: an error chunk, rare; encoding/json.
			return s.other(k, chunkKeys...)
		}
	})
	if !ok || s.peek() != 0 || s.i != len(s.b) {
		return false
	}
	return true
}

func (s *chunkScanner) choices(ch *chunk) bool {
	if s.null() {
		ch.Choices = nil
		return true
	}
	if !s.eat('[') {
		return false
	}
	ch.Choices = ch.Choices[:0]
	if s.eat(']') {
		return true
	}
	for {
		var c choice
		if !s.object(func(k []byte) bool {
			switch string(k) {
			case "delta":
				return s.content(&c.Delta)
			case "message":
				return s.content(&c.Message)
			case "finish_reason":
				var ok bool
				c.FinishReason, ok = s.optString()
				return ok
			default:
				return s.other(k, "delta", "message", "finish_reason")
			}
		}) {
			return false
		}
		ch.Choices = append(ch.Choices, c)
		if s.eat(']') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// content reads a delta or message object; null leaves it nil.
func (s *chunkScanner) content(dst **textPart) bool {
	if s.null() {
		*dst = nil
		return true
	}
	p := &textPart{}
	*dst = p
	return s.object(func(k []byte) bool {
		if string(k) == "content" {
			var ok bool
			p.Content, ok = s.optString()
			return ok
		}
		return s.other(k, "content")
	})
}

func (s *chunkScanner) usage(ch *chunk) bool {
	if s.null() {
		ch.Usage = nil
		return true
	}
	u := &chunkUsage{}
	ch.Usage = u
	return s.object(func(k []byte) bool {
		var ok bool
		switch string(k) {
		case "prompt_tokens":
			u.PromptTokens, ok = s.int()
		case "completion_tokens":
			u.CompletionTokens, ok = s.int()
		default:
			ok = s.other(k, "prompt_tokens", "completion_tokens")
		}
		return ok
	})
}
