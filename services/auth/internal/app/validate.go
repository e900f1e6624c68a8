package app

import (
	_ "embed"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input limits (api.md).
const (
	MinUsername = 3
	MaxUsername = 32
	MaxEmail    = 254
	MinPassword = 12
	MaxPassword = 128
	MaxName     = 100
)

//go:embed common_passwords.txt
var commonPasswordsFile string

// commonPasswords parses the embedded list (lowercased, one a line, # comments).
func commonPasswords() map[string]struct{} {
	set := make(map[string]struct{}, 32000)
	for line := range strings.SplitSeq(commonPasswordsFile, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[line] = struct{}{}
	}
	return set
}

// SignupInput is what a new account is made from.
type SignupInput struct {
	Username  string
	Email     string
	Password  string
	Firstname string
	Lastname  string
	ClientIP  string
}

func invalid(field, msg string) *ValidationError {
	return &ValidationError{Field: field, Message: msg}
}

// normalizeSignup trims what may be trimmed and checks every field, naming the first
// wrong one. The password is taken exactly as sent.
func (s *Service) normalizeSignup(in SignupInput) (SignupInput, error) {
	in.Username = strings.TrimSpace(in.Username)
	in.Email = strings.TrimSpace(in.Email)
	in.Firstname = strings.TrimSpace(in.Firstname)
	in.Lastname = strings.TrimSpace(in.Lastname)
	if !validUsername(in.Username) {
		return in, invalid("username", "Invalid username: use 3 to 32 characters: letters, digits, '_', '.' or '-'.")
	}
	if !validEmail(in.Email) {
		return in, invalid("email", "Invalid email: enter a single valid email address such as name@example.com.")
	}
	if err := s.checkPassword(in.Password, in.Username, in.Email); err != nil {
		return in, err
	}
	if !validName(in.Firstname) {
		return in, invalid("firstname", "Invalid firstname: use 1 to 100 characters.")
	}
	if !validName(in.Lastname) {
		return in, invalid("lastname", "Invalid lastname: use 1 to 100 characters.")
	}
	return in, nil
}

func validUsername(u string) bool {
	if len(u) < MinUsername || len(u) > MaxUsername {
		return false
	}
	for _, c := range u {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// validEmail accepts one bare address (no display name, no angle brackets, no
// comments) that net/mail parses to itself, with a dotted domain.
func validEmail(e string) bool {
	if e == "" || len(e) > MaxEmail || !utf8.ValidString(e) {
		return false
	}
	for _, c := range e {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return false
		}
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	local, domain := e[:at], e[at+1:]
	if local == "" || len(local) > 64 || strings.Count(e, "@") != 1 {
		return false
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.HasPrefix(domain, "[") {
		return false
	}
	return true
}

func validName(n string) bool {
	l := utf8.RuneCountInString(n)
	if !utf8.ValidString(n) || l < 1 || l > MaxName {
		return false
	}
	for _, c := range n {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// checkPassword applies the password rules: 12..128 characters, and not a common
// password, not a common password with a few digits or symbols appended, not one
// character repeated, not the username or the email (or its local part).
func (s *Service) checkPassword(pw, username, email string) error {
	n := utf8.RuneCountInString(pw)
	if !utf8.ValidString(pw) || n < MinPassword || n > MaxPassword {
		return invalid("password", "Invalid password: use 12 to 128 characters.")
	}
	if s.weakPassword(pw, username, email) {
		return invalid("password", "Invalid password: it is too common or too easy to guess; choose a longer, unusual passphrase.")
	}
	return nil
}

func (s *Service) weakPassword(pw, username, email string) bool {
	low := strings.ToLower(pw)
	if _, ok := s.common[low]; ok {
		return true
	}
	base := strings.TrimRightFunc(low, func(r rune) bool { return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) })
	if len(base) >= 4 && len(low)-len(base) <= 6 {
		if _, ok := s.common[base]; ok {
			return true
		}
	}
	first, _ := utf8.DecodeRuneInString(low)
	if strings.Trim(low, string(first)) == "" {
		return true
	}
	for _, ctx := range contextWords(username, email) {
		if low == ctx || base == ctx {
			return true
		}
	}
	return false
}

func contextWords(username, email string) []string {
	var words []string
	if username != "" {
		words = append(words, strings.ToLower(username))
	}
	if email != "" {
		e := strings.ToLower(email)
		words = append(words, e)
		if local, _, ok := strings.Cut(e, "@"); ok && local != "" {
			words = append(words, local)
		}
	}
	return words
}
