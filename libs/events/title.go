package events

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Chat titles: after a chat's first answer, chat asks an inference worker for a short
// title written by the chat's own model.

// SubjectTitleGenerate is served by the inference workers (request-reply): it asks the
// model for a title of at most MaxGeneratedTitleWords words.
const SubjectTitleGenerate = "inference.v1.title.generate"

// MaxGeneratedTitleWords bounds a generated title.
const MaxGeneratedTitleWords = 8

// TitleRequest asks for a chat title from the first exchange of the chat.
type TitleRequest struct {
	ChatID string `json:"chat_id"`
	// Model is the chat's model; the title is written by it.
	Model    string `json:"model"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// TitleReply is the generated title: cleaned, at most MaxGeneratedTitleWords words. An
// empty Title means the model cannot write titles (the offline demo model): the chat
// keeps the first words of its first message.
type TitleReply struct {
	Title string `json:"title"`
	Model string `json:"model,omitempty"`
}

// CleanTitle turns a model's reply into a title: its first non-empty line,
// without a "Title:" label, Markdown marks, quotes or trailing punctuation, white space
// folded, at most MaxGeneratedTitleWords words and MaxTitleChars
// characters. It returns "" when nothing usable is left.
func CleanTitle(raw string) string {
	raw = strings.ToValidUTF8(raw, "")
	line := ""
	for l := range strings.SplitSeq(raw, "\n") {
		l = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || r == '\uFFFD' {
				return ' '
			}
			return r
		}, l)
		if strings.TrimSpace(strings.Trim(l, "#*_`>-=~ \t")) != "" {
			line = l
			break
		}
	}
	line = strings.NewReplacer("**", "", "__", "", "`", "").Replace(line)
	line = strings.TrimLeft(strings.TrimSpace(line), "#>*- \t")
	for _, label := range []string{"title:", "chat title:", "conversation title:"} {
		if len(line) >= len(label) && strings.EqualFold(line[:len(label)], label) {
			line = line[len(label):]
			break
		}
	}
	const quotes = "\"'“”‘’«»「」„*_#>"
	words := strings.Fields(line)
	for i, w := range words {
		words[i] = strings.Trim(w, quotes)
	}
	words = strings.Fields(strings.Join(words, " "))
	if len(words) > MaxGeneratedTitleWords {
		words = words[:MaxGeneratedTitleWords]
	}
	title := strings.Join(words, " ")
	title = strings.TrimRightFunc(title, func(r rune) bool {
		return unicode.IsPunct(r) && r != ')' && r != '?' && r != '!' || unicode.IsSpace(r)
	})
	title = strings.TrimRight(strings.Trim(title, quotes+" "), ".:;,")
	title = truncateTitle(title, MaxTitleChars)
	if !strings.ContainsFunc(title, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
		return ""
	}
	return strings.TrimSpace(title)
}

func truncateTitle(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
