package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
)

// titlePrefix starts the one user message of a title request (inference's
// TitleWriter): chat asks for a title after a chat's first answer.
const titlePrefix = "Write a short title"

// Fake is the fake HuggingFace router of a test. Title requests are answered with a
// plain answer chosen per request (header X-Fakehf-Step: ok), so they never take the
// scripted steps a test queued for its answers.
type Fake struct {
	*fakehf.Server
	ts *httptest.Server
}

// NewFake starts a fake router on a local port; Close it when done.
func NewFake(opts fakehf.Options) *Fake {
	f := &Fake{Server: fakehf.NewHandler(opts)}
	f.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte(titlePrefix)) {
				r.Header.Set("X-Fakehf-Step", "ok")
			}
		}
		f.Server.ServeHTTP(w, r)
	}))
	return f
}

// URL is the fake's root URL.
func (f *Fake) URL() string { return f.ts.URL }

// BaseURL is the OpenAI-compatible base URL (HF_CHAT_BASE_URL).
func (f *Fake) BaseURL() string { return f.ts.URL + "/v1" }

// Close stops the fake, cutting open streams.
func (f *Fake) Close() {
	f.ts.CloseClientConnections()
	f.ts.Close()
}

// IsTitle reports whether a recorded request asked for a chat title.
func IsTitle(r fakehf.Request) bool {
	return r.Chat != nil && strings.HasPrefix(r.Chat.LastUser(), titlePrefix)
}

// Answers returns the recorded chat-completion requests that wrote answers (not
// titles), oldest first.
func (f *Fake) Answers() []fakehf.Request {
	var out []fakehf.Request
	for _, r := range f.ChatRequests() {
		if !IsTitle(r) {
			out = append(out, r)
		}
	}
	return out
}
