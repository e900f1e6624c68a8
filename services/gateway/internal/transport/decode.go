package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/libs/events"
)

// MaxBodyBytes is the largest request body the gateway reads.
const MaxBodyBytes = 64 << 10

// Bounds on query parameters (the owner checks its own too).
const (
	maxCursorLen = 512
	maxQueryLen  = 200
	maxIDLen     = 64
	maxModelLen  = 200
)

// limitBody refuses, before any handler runs, request bodies that are not JSON (415)
// or that announce more than MaxBodyBytes (413), and caps what is read of the rest.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasBody(r) {
			if r.ContentLength > MaxBodyBytes {
				writeJSON(w, errTooLarge.Status(), events.ErrorEnvelope{Error: errTooLarge})
				return
			}
			if !isJSON(r.Header.Get("Content-Type")) {
				writeJSON(w, errUnsupportedMedia.Status(), events.ErrorEnvelope{Error: errUnsupportedMedia})
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// hasBody reports whether the request carries a body (or may: unknown length).
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}

// isJSON reports whether a Content-Type is application/json in UTF-8.
func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}

// decode reads the JSON object in r's body into dst. An empty body leaves dst as it is
// when allowEmpty is set. Unknown fields are ignored; invalid UTF-8, malformed JSON,
// wrong types and anything after the object are refused with invalid_json.
func decode(r *http.Request, dst any, allowEmpty bool) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errTooLarge
		}
		return fmt.Errorf("read request body: %w", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if allowEmpty {
			return nil
		}
		return errEmptyBody
	}
	if !utf8.Valid(raw) || hasLoneSurrogate(raw) {
		// encoding/json would silently turn invalid bytes (and lone surrogate escapes)
		// into U+FFFD.
		return errInvalidUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field != "" {
				return events.Errorf(events.CodeInvalidJSON, "The field %q has the wrong type.", typeErr.Field)
			}
			return events.Errorf(events.CodeInvalidJSON, "The request body must be a JSON object.")
		}
		return errInvalidJSON
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errTrailingData
	}
	return nil
}

// validID reports whether an id from a path looks like one of ours. Anything else is
// answered 404 without asking a service.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkContent applies the message-content rule: 1..MaxMessageChars characters after
// trimming, and no NUL characters.
func checkContent(content string) error {
	n := utf8.RuneCountInString(strings.TrimSpace(content))
	if n == 0 {
		return events.Errorf(events.CodeInvalidInput, "content: a message cannot be empty.")
	}
	if n > events.MaxMessageChars {
		return events.Errorf(events.CodeInvalidInput, "content: a message can be at most %d characters.", events.MaxMessageChars)
	}
	if strings.ContainsRune(content, 0) {
		return events.Errorf(events.CodeInvalidInput, "content: a message cannot contain NUL characters.")
	}
	return nil
}

// checkLen refuses a string field longer than max characters.
func checkLen(field, v string, max int) error {
	if utf8.RuneCountInString(v) > max {
		return events.Errorf(events.CodeInvalidInput, "%s: at most %d characters.", field, max)
	}
	if strings.ContainsRune(v, 0) {
		return events.Errorf(events.CodeInvalidInput, "%s: cannot contain NUL characters.", field)
	}
	return nil
}

// pageLimit reads ?limit=: empty means the owner's default, above the maximum is
// clamped, anything else not a positive integer is refused.
func pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, events.Errorf(events.CodeInvalidInput, "limit: must be a positive integer.")
	}
	return min(n, events.MaxPageSize), nil
}

// queryParam reads a bounded query parameter.
func queryParam(r *http.Request, name string, max int) (string, error) {
	v := r.URL.Query().Get(name)
	if len(v) > max*4 || utf8.RuneCountInString(v) > max || !utf8.ValidString(v) {
		return "", events.Errorf(events.CodeInvalidInput, "%s: at most %d characters.", name, max)
	}
	return v, nil
}
