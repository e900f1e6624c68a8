// Package api_test runs the whole product in one process (a real NATS, a real MariaDB
// database, the fake HuggingFace router, and auth, chat, inference and the gateway
// through their Run functions) and exercises it through the HTTP API only.
package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// password is a password every test user gets (long enough, not a common one).
const password = "correct horse battery staple 42"

// stack is the running product (tests/internal/e2e's, one gateway and one worker).
type stack struct {
	t    *testing.T
	base string
	hf   *e2e.Fake
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := e2e.New(t, e2e.Options{})
	return &stack{t: t, base: st.URLs[0], hf: st.HF}
}

// client is one API client: a browser (cookie jar, CSRF header) or a bearer client.
type client struct {
	s      *stack
	http   *http.Client
	bearer string
	// browser marks a cookie client, which sends X-Parley-CSRF: 1 like the SPA.
	browser bool
	user    events.User
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) code() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &env)
	return env.Error.Code
}

func (s *stack) newClient(browser bool) *client {
	jar, _ := cookiejar.New(nil)
	return &client{s: s, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}, browser: browser}
}

// raw sends a request with a raw body and extra headers.
func (c *client) raw(method, path string, body []byte, header http.Header) response {
	c.s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.s.base+path, rd)
	if err != nil {
		c.s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.browser && method != http.MethodGet {
		req.Header.Set("X-Parley-CSRF", "1")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// call sends body as JSON, checks the status and decodes the answer into out.
func (c *client) call(method, path string, body any, want int, out any) response {
	c.s.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.s.t.Fatal(err)
		}
	}
	res := c.raw(method, path, b, nil)
	if res.status != want {
		c.s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.status, want, res.body)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			c.s.t.Fatalf("%s %s: decode %s: %v", method, path, res.body, err)
		}
	}
	return res
}

type loginReply struct {
	User         events.User `json:"user"`
	AccessToken  string      `json:"access_token"`
	ExpiresAt    time.Time   `json:"expires_at"`
	RefreshToken string      `json:"refresh_token"`
}

// signup creates an account named name and returns it.
func (s *stack) signup(name string) events.User {
	s.t.Helper()
	var rep struct {
		User events.User `json:"user"`
	}
	s.newClient(true).call("POST", "/api/auth/signup", map[string]string{
		"username": name, "email": name + "@example.com", "password": password, "firstname": "First " + name, "lastname": "Last",
	}, http.StatusCreated, &rep)
	return rep.User
}

// login signs in as a browser (cookies) or an API client (bearer).
func (s *stack) login(name string, browser bool) *client {
	s.t.Helper()
	c := s.newClient(true)
	var rep loginReply
	c.call("POST", "/api/auth/login", map[string]string{"username": name, "password": password}, http.StatusOK, &rep)
	c.user = rep.User
	if !browser {
		c.browser = false
		c.bearer = rep.AccessToken
		c.http.Jar, _ = cookiejar.New(nil)
	}
	return c
}

// user signs up and logs in a new user.
func (s *stack) user(name string, browser bool) *client {
	s.t.Helper()
	s.signup(name)
	return s.login(name, browser)
}

func (c *client) createChat(title string) events.Chat {
	c.s.t.Helper()
	var rep events.ChatReply
	c.call("POST", "/api/chats", map[string]string{"title": title}, http.StatusCreated, &rep)
	return rep.Chat
}

func (c *client) send(chatID, content string) events.SendMessageReply {
	c.s.t.Helper()
	var rep events.SendMessageReply
	c.call("POST", "/api/chats/"+chatID+"/messages", map[string]string{"content": content}, http.StatusAccepted, &rep)
	return rep
}

func (c *client) messages(chatID string) []events.Message {
	c.s.t.Helper()
	var rep events.ListMessagesReply
	c.call("GET", "/api/chats/"+chatID+"/messages?limit=200", nil, http.StatusOK, &rep)
	return rep.Messages
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// stream reads an answer's stream until it ends (done or error) or 30 s pass.
func (c *client) stream(messageID string, header http.Header) (response, []sseEvent) {
	c.s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.s.base+"/api/messages/"+messageID+"/stream", nil)
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.s.t.Fatalf("open stream: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return response{status: res.StatusCode, header: res.Header, body: b}, nil
	}
	evs, err := readEvents(res.Body, func(e sseEvent) bool { return e.Event == "done" || e.Event == "error" })
	if err != nil && !errors.Is(err, io.EOF) {
		c.s.t.Fatalf("read stream: %v (got %v)", err, evs)
	}
	return response{status: res.StatusCode, header: res.Header}, evs
}

// readEvents parses server-sent events until stop says so or the body ends.
func readEvents(r io.Reader, stop func(sseEvent) bool) ([]sseEvent, error) {
	var out []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event != "" || cur.Data != "" {
				out = append(out, cur)
				if stop(cur) {
					return out, nil
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data += strings.TrimPrefix(line, "data: ")
		default:
			return out, fmt.Errorf("unexpected line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, io.EOF
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
