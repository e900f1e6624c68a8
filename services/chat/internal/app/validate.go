package app

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/parley-chat/parley/libs/events"
)

// DefaultTitle is the provisional title of a chat created without one.
const DefaultTitle = "New chat"

const (
	maxQueryChars       = 200
	maxSearchTerms      = 8
	maxModelChars       = 200
	maxErrorCodeChars   = 64
	maxErrorMsgChars    = 1000
	provisionalWords    = 8
	provisionalMaxChars = 60
)

// validID reports whether s is a well-formed id (a UUID in its canonical 36-character
// form). Anything else cannot name a stored resource.
func validID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

func checkUser(userID string) error {
	if !validID(userID) {
		return ErrUnauthenticated
	}
	return nil
}

// cleanText checks a user-supplied text and returns it trimmed.
func cleanText(field, s string, maxChars int, allowEmpty bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("%s is not valid UTF-8 text.", field)
	}
	if strings.ContainsRune(s, 0) {
		return "", invalid("%s must not contain NUL characters.", field)
	}
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if n == 0 && !allowEmpty {
		return "", invalid("%s must not be empty.", field)
	}
	if n > maxChars {
		return "", invalid("%s must be at most %d characters (it has %d).", field, maxChars, n)
	}
	return s, nil
}

func cleanContent(s string) (string, error) {
	return cleanText("The message", s, events.MaxMessageChars, false)
}

// cleanTitle also folds runs of white space (newlines included) into one space.
func cleanTitle(s string) (string, error) {
	s, err := cleanText("The title", s, events.MaxTitleChars, false)
	if err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(s), " "), nil
}

func cleanSystemPrompt(s string) (string, error) {
	return cleanText("The system prompt", s, events.MaxSystemPrompt, true)
}

func cleanModel(s string) (string, error) {
	return cleanText("The model", s, maxModelChars, false)
}

// checkClientMessageID allows 1..64 printable ASCII characters without spaces.
func checkClientMessageID(s string) error {
	if len(s) > events.MaxClientMessageID {
		return invalid("client_message_id must be at most %d characters.", events.MaxClientMessageID)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return invalid("client_message_id must be printable ASCII without spaces.")
		}
	}
	return nil
}

func pageSize(limit int) (int, error) {
	switch {
	case limit == 0:
		return events.DefaultPageSize, nil
	case limit < 1 || limit > events.MaxPageSize:
		return 0, invalid("limit must be between 1 and %d.", events.MaxPageSize)
	}
	return limit, nil
}

// searchTerms splits a search query into words (letters and digits), lowercased,
// without duplicates. Everything else, including full-text operators, separates words.
func searchTerms(q string) ([]string, error) {
	if !utf8.ValidString(q) || strings.ContainsRune(q, 0) {
		return nil, invalid("The search text is not valid UTF-8 text.")
	}
	if utf8.RuneCountInString(q) > maxQueryChars {
		return nil, invalid("The search text must be at most %d characters.", maxQueryChars)
	}
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	})
	var terms []string
	seen := map[string]bool{}
	for _, w := range words {
		if seen[w] {
			continue
		}
		seen[w] = true
		terms = append(terms, w)
		if len(terms) == maxSearchTerms {
			break
		}
	}
	return terms, nil
}

// provisionalTitle is the first words of a message: at most 8 words and 60 characters.
func provisionalTitle(content string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(content) {
		if i == provisionalWords {
			break
		}
		wn := utf8.RuneCountInString(w)
		sep := 0
		if i > 0 {
			sep = 1
		}
		if n+sep+wn > provisionalMaxChars {
			if i == 0 { // one very long word: cut it
				r := []rune(w)
				b.WriteString(string(r[:provisionalMaxChars]))
			}
			break
		}
		if sep == 1 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		n += sep + wn
	}
	if b.Len() == 0 {
		return DefaultTitle
	}
	return b.String()
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// Cursors are opaque to clients: base64url of a versioned, internal position.

func encodeChatCursor(c ChatCursor) string {
	raw := "c1|" + strconv.FormatInt(c.UpdatedAt.UnixMicro(), 10) + "|" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeChatCursor(s string) (*ChatCursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := invalid("The cursor is not valid.")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[0] != "c1" || !validID(parts[2]) {
		return nil, bad
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, bad
	}
	return &ChatCursor{UpdatedAt: time.UnixMicro(us).UTC(), ID: parts[2]}, nil
}

func encodeMessageCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("m1|" + strconv.FormatInt(seq, 10)))
}

func decodeMessageCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	bad := invalid("The cursor is not valid.")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	rest, ok := strings.CutPrefix(string(raw), "m1|")
	if !ok {
		return 0, bad
	}
	seq, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || seq <= 0 {
		return 0, bad
	}
	return seq, nil
}
