// Package api_test runs the whole product in one process (a real NATS, a real MariaDB
// database, the fake HuggingFace router, and auth, chat, inference and the gateway
// through their Run functions) and exercises it through the HTTP API only.
package api_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// password is the password of every test user.
const password = e2e.Password

// stack is the running product (tests/internal/e2e's, one gateway and one worker).
type stack struct {
	*e2e.Stack
	t    *testing.T
	base string
	hf   *e2e.Fake
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := e2e.New(t, e2e.Options{})
	return &stack{Stack: st, t: t, base: st.URLs[0], hf: st.HF}
}

// use makes t (a subtest) the test that s and its clients report to.
func (s *stack) use(t *testing.T) {
	s.t = t
	s.Use(t)
}

// client is one API client: a browser (cookie jar, CSRF header) or a bearer client.
type client = e2e.Client

// sseEvent is one server-sent event.
type sseEvent = e2e.Event

type loginReply = e2e.LoginReply

// response is one HTTP answer.
type response = e2e.Response

// user signs up and logs in a new user.
func (s *stack) user(name string, browser bool) *client {
	s.t.Helper()
	s.SignUp(name)
	return s.LogIn(name, browser)
}

// answer collects a finished stream: the text of its deltas (after the last reset), the
// event names, and the final message.
type answer struct {
	text    string
	names   []string
	final   events.Message
	errCode string
}

func collect(t *testing.T, evs []sseEvent) answer {
	t.Helper()
	var a answer
	for _, e := range evs {
		a.names = append(a.names, e.Event)
		switch e.Event {
		case "delta":
			var d struct {
				Seq  int64  `json:"seq"`
				Text string `json:"text"`
			}
			mustJSON(t, e.Data, &d)
			if e.ID != fmt.Sprint(d.Seq) {
				t.Errorf("delta id %s, seq %d", e.ID, d.Seq)
			}
			a.text += d.Text
		case "reset":
			a.text = ""
		case "done":
			var d struct {
				Message events.Message `json:"message"`
			}
			mustJSON(t, e.Data, &d)
			a.final = d.Message
		case "error":
			var d struct {
				Error   events.Error   `json:"error"`
				Message events.Message `json:"message"`
			}
			mustJSON(t, e.Data, &d)
			a.final, a.errCode = d.Message, d.Error.Code
		}
	}
	return a
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
}

func names(evs []sseEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Event)
	}
	return out
}
