package e2e

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
)

// Client is one API client of one gateway replica: a bearer client (Token) or a
// browser (a cookie jar in HTTP, Browser set).
type Client struct {
	// t, when set (WithT), is the test the client reports to; otherwise it is the
	// stack's current test (Stack.Use).
	t      *testing.T
	Base   string
	Token  string
	User   events.User
	HTTP   *http.Client
	stackT *Stack
	// Browser sends X-Parley-CSRF: 1 on unsafe requests, like the SPA.
	Browser bool
	// Forwarded, when set, is sent as X-Forwarded-For.
	Forwarded string
	// Session is the login answer of a client made by LogIn.
	Session LoginReply
}

// LoginReply is the answer of POST /api/auth/login and /api/auth/refresh.
type LoginReply struct {
	User         events.User `json:"user"`
	AccessToken  string      `json:"access_token"`
	ExpiresAt    time.Time   `json:"expires_at"`
	RefreshToken string      `json:"refresh_token"`
}

// NewClient is a client of gateway 0 with hc (a fresh cookie jar when nil), sending
// token as a bearer token when not empty.
func (s *Stack) NewClient(hc *http.Client, token string) *Client {
	if hc == nil {
		jar, _ := cookiejar.New(nil)
		hc = &http.Client{Jar: jar, Timeout: 30 * time.Second}
	}
	return &Client{Base: s.URLs[0], HTTP: hc, Token: token, stackT: s}
}

// T is the test the client reports to.
func (c *Client) T() *testing.T {
	if c.t != nil || c.stackT == nil {
		return c.t
	}
	return c.stackT.Current()
}

// NewBrowser is a new browser client (cookie jar, CSRF header) with no session yet.
func (s *Stack) NewBrowser() *Client {
	c := s.NewClient(nil, "")
	c.Browser = true
	return c
}

// SignUp creates an account named name (first name "First <name>").
func (s *Stack) SignUp(name string) events.User {
	s.Current().Helper()
	var rep struct {
		User events.User `json:"user"`
	}
	s.NewBrowser().Call("POST", "/api/auth/signup", map[string]string{
		"username": name, "email": name + "@example.com", "password": Password, "firstname": "First " + name, "lastname": "Last",
	}, http.StatusCreated, &rep)
	return rep.User
}

// LogIn signs in as a browser (cookies) or an API client (bearer token, no cookies).
func (s *Stack) LogIn(name string, browser bool) *Client {
	s.Current().Helper()
	c := s.NewBrowser()
	var rep LoginReply
	c.Call("POST", "/api/auth/login", map[string]string{"username": name, "password": Password}, http.StatusOK, &rep)
	c.User, c.Session = rep.User, rep
	if !browser {
		c.Browser = false
		c.Token = rep.AccessToken
		c.HTTP.Jar, _ = cookiejar.New(nil)
	}
	return c
}

// Response is one HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Code is the error code of an error answer ("" for others).
func (r Response) Code() string {
	var env events.ErrorEnvelope
	if json.Unmarshal(r.Body, &env) != nil || env.Error == nil {
		return ""
	}
	return env.Error.Code
}

// User signs up a new user called name and logs in as a bearer client of gateway 0.
func (s *Stack) User(name string) *Client {
	s.T.Helper()
	c := &Client{Base: s.URLs[0], HTTP: &http.Client{Timeout: 30 * time.Second}, stackT: s}
	c.Call("POST", "/api/auth/signup", map[string]string{
		"username": name, "email": name + "@example.com", "password": Password, "firstname": "First", "lastname": "Last",
	}, http.StatusCreated, nil, "X-Parley-CSRF", "1")
	var rep struct {
		User        events.User `json:"user"`
		AccessToken string      `json:"access_token"`
	}
	c.Call("POST", "/api/auth/login", map[string]string{"username": name, "password": Password}, http.StatusOK, &rep,
		"X-Parley-CSRF", "1")
	c.User, c.Token = rep.User, rep.AccessToken
	return c
}

// On returns the same client talking to gateway replica i.
func (c *Client) On(i int) *Client {
	cp := *c
	cp.Base = c.stackT.URLs[i]
	return &cp
}

// WithT returns the same client reporting to t.
func (c *Client) WithT(t *testing.T) *Client {
	cp := *c
	cp.t = t
	return &cp
}

// Do sends a request; body is JSON-encoded unless it is []byte or nil. header holds
// name, value pairs.
func (c *Client) Do(method, path string, body any, header ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	return c.send(method, path, rd, func(h http.Header) {
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
	})
}

// Raw sends a request with a raw body (none when nil) and extra headers, taken as they
// are (a nil value deletes one); a transport error fails the test.
func (c *Client) Raw(method, path string, body []byte, header http.Header) Response {
	c.T().Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	res, err := c.send(method, path, rd, func(h http.Header) {
		for k, v := range header {
			if v == nil {
				h.Del(k)
			} else {
				h[k] = v
			}
		}
	})
	if err != nil {
		c.T().Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

func (c *Client) send(method, path string, rd io.Reader, header func(http.Header)) (Response, error) {
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		return Response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Browser && method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("X-Parley-CSRF", "1")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Forwarded != "" {
		req.Header.Set("X-Forwarded-For", c.Forwarded)
	}
	header(req.Header)
	res, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	out := Response{Status: res.StatusCode, Header: res.Header, Body: b}
	c.record(method, path, out)
	return out, err
}

func (c *Client) record(method, path string, res Response) {
	if c.stackT != nil && c.stackT.OnResponse != nil {
		c.stackT.OnResponse(method, path, res)
	}
}

// Call sends a request, fails the test unless the status is want, and decodes the
// answer into out (when not nil).
func (c *Client) Call(method, path string, body any, want int, out any, header ...string) Response {
	c.T().Helper()
	res, err := c.Do(method, path, body, header...)
	if err != nil {
		c.T().Fatalf("%s %s: %v", method, path, err)
	}
	if res.Status != want {
		c.T().Fatalf("%s %s: status %d, want %d: %s", method, path, res.Status, want, res.Body)
	}
	if out != nil {
		if err := json.Unmarshal(res.Body, out); err != nil {
			c.T().Fatalf("%s %s: decode %s: %v", method, path, res.Body, err)
		}
	}
	return res
}

// CreateChat creates a chat.
func (c *Client) CreateChat(title string) events.Chat {
	c.T().Helper()
	var rep events.ChatReply
	c.Call("POST", "/api/chats", map[string]string{"title": title}, http.StatusCreated, &rep)
	return rep.Chat
}

// Send posts a user message and returns both messages.
func (c *Client) Send(chatID, content string) events.SendMessageReply {
	c.T().Helper()
	var rep events.SendMessageReply
	c.Call("POST", "/api/chats/"+chatID+"/messages", map[string]string{"content": content}, http.StatusAccepted, &rep)
	return rep
}

// Messages lists a chat's messages, oldest first.
func (c *Client) Messages(chatID string) []events.Message {
	c.T().Helper()
	var rep events.ListMessagesReply
	c.Call("GET", "/api/chats/"+chatID+"/messages?limit=200", nil, http.StatusOK, &rep)
	return rep.Messages
}

// Message returns one stored message of a chat.
func (c *Client) Message(chatID, id string) events.Message {
	c.T().Helper()
	for _, m := range c.Messages(chatID) {
		if m.ID == id {
			return m
		}
	}
	c.T().Fatalf("message %s not in chat %s", id, chatID)
	return events.Message{}
}

// Event is one server-sent event, or a comment line (Comment set).
type Event struct {
	ID      string
	Event   string
	Data    string
	Comment string
}

// EventStream is an open text/event-stream response.
type EventStream struct {
	t      *testing.T
	Status int
	Header http.Header
	body   io.ReadCloser
	cancel context.CancelFunc
	events chan Event
	err    chan error
}

// Open opens an event stream at path; header holds name, value pairs. A non-200
// answer is returned with its status and no events.
func (c *Client) Open(path string, header ...string) *EventStream {
	c.T().Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		cancel()
		c.T().Fatalf("open %s: %v", path, err)
	}
	es := &EventStream{t: c.T(), Status: res.StatusCode, Header: res.Header, body: res.Body, cancel: cancel,
		events: make(chan Event, 1024), err: make(chan error, 1)}
	c.T().Cleanup(es.Close)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		es.err <- fmt.Errorf("status %d: %s", res.StatusCode, b)
		close(es.events)
		return es
	}
	go es.read()
	return es
}

func (es *EventStream) read() {
	defer close(es.events)
	es.err <- parseEvents(es.body, func(ev Event) bool {
		es.events <- ev
		return false
	})
}

// parseEvents parses server-sent events and comments, handing each to emit until emit
// returns true (then nil) or the body ends (io.EOF) or breaks.
func parseEvents(r io.Reader, emit func(Event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur Event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event != "" || cur.Data != "" {
				if emit(cur) {
					return nil
				}
			}
			cur = Event{}
		case strings.HasPrefix(line, ":"):
			if emit(Event{Comment: strings.TrimSpace(strings.TrimPrefix(line, ":"))}) {
				return nil
			}
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data += strings.TrimPrefix(line, "data: ")
		default:
			return fmt.Errorf("unexpected line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// ReadEvents parses server-sent events (comments skipped) until stop says so or the
// body ends (then the error is io.EOF).
func ReadEvents(r io.Reader, stop func(Event) bool) ([]Event, error) {
	var out []Event
	err := parseEvents(r, func(ev Event) bool {
		if ev.Comment != "" {
			return false
		}
		out = append(out, ev)
		return stop(ev)
	})
	return out, err
}

// ReadStream opens an event stream at path with extra headers (taken as they are) and
// reads it until stop says so, it ends or within passes; started, when set, is called
// once it is open. A non-200 answer comes back with its body and no events; a 200's
// Body is what was read. A broken stream fails the test.
func (c *Client) ReadStream(path string, header http.Header, stop func(Event) bool, within time.Duration, started func()) (Response, []Event) {
	c.T().Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		c.T().Fatalf("open stream %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		out := Response{Status: res.StatusCode, Header: res.Header, Body: b}
		c.record("GET", path, out)
		return out, nil
	}
	if started != nil {
		started()
	}
	var raw bytes.Buffer
	evs, err := ReadEvents(io.TeeReader(res.Body, &raw), stop)
	out := Response{Status: res.StatusCode, Header: res.Header, Body: raw.Bytes()}
	c.record("GET", path, out)
	if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
		c.T().Fatalf("read stream: %v (got %v)", err, evs)
	}
	return out, evs
}

// ReadAnswer reads an answer's stream until it ends (done or error) or 30 s pass.
func (c *Client) ReadAnswer(messageID string, header http.Header) (Response, []Event) {
	c.T().Helper()
	return c.ReadStream("/api/messages/"+messageID+"/stream", header, IsFinal, 30*time.Second, nil)
}

// Next returns the next event or comment; ok is false when the stream ended or
// nothing came within timeout (ended tells which).
func (es *EventStream) Next(timeout time.Duration) (ev Event, ok, ended bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev, open := <-es.events:
		return ev, open, !open
	case <-t.C:
		return Event{}, false, false
	}
}

// NextEvent is Next skipping comments.
func (es *EventStream) NextEvent(timeout time.Duration) (ev Event, ok, ended bool) {
	deadline := time.Now().Add(timeout)
	for {
		ev, ok, ended = es.Next(time.Until(deadline))
		if !ok || ev.Comment == "" {
			return ev, ok, ended
		}
	}
}

// Until reads events (no comments) until stop says so, the stream ends, or timeout
// passes; it fails the test on a timeout.
func (es *EventStream) Until(timeout time.Duration, stop func(Event) bool) []Event {
	es.t.Helper()
	deadline := time.Now().Add(timeout)
	var out []Event
	for {
		ev, ok, ended := es.NextEvent(time.Until(deadline))
		if ended {
			return out
		}
		if !ok {
			es.t.Fatalf("stream: nothing more within %v; got %v", timeout, Names(out))
		}
		out = append(out, ev)
		if stop(ev) {
			return out
		}
	}
}

// Rest reads events until a final event (done or error) or the end of the stream.
func (es *EventStream) Rest(timeout time.Duration) []Event {
	es.t.Helper()
	return es.Until(timeout, IsFinal)
}

// Ended waits for the server to end the stream and reports whether it did within
// timeout (events still unread are skipped).
func (es *EventStream) Ended(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		_, ok, ended := es.Next(time.Until(deadline))
		if ended {
			return true
		}
		if !ok {
			return false
		}
	}
}

// Close ends the stream from the client side (the client goes away).
func (es *EventStream) Close() {
	es.cancel()
	_ = es.body.Close()
}

// IsFinal reports whether ev ends an answer's stream.
func IsFinal(ev Event) bool { return ev.Event == events.GenDone || ev.Event == events.GenError }

// Stream reads a whole answer stream of messageID (Last-Event-ID header pairs allowed).
func (c *Client) Stream(messageID string, header ...string) []Event {
	c.T().Helper()
	es := c.Open("/api/messages/"+messageID+"/stream", header...)
	if es.Status != http.StatusOK {
		c.T().Fatalf("stream %s: status %d", messageID, es.Status)
	}
	defer es.Close()
	return es.Rest(30 * time.Second)
}

// Names lists the event names.
func Names(evs []Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Event)
	}
	return out
}

// Answer is a streamed answer: the text after the last reset, the final message and
// the error code of an `error` event.
type Answer struct {
	Text    string
	Final   events.Message
	ErrCode string
	HasEnd  bool
}

// Collect folds events into an Answer, checking that every delta's id equals its seq
// and that the ids run without gaps or repeats.
func Collect(t *testing.T, evs []Event) Answer {
	t.Helper()
	var a Answer
	var last int64
	for _, e := range evs {
		var id int64
		if _, err := fmt.Sscan(e.ID, &id); err != nil {
			t.Errorf("event %s has id %q", e.Event, e.ID)
		}
		if id <= 0 || (last > 0 && id != last+1) {
			t.Errorf("event %s has id %d after %d: ids must run without gaps or repeats", e.Event, id, last)
		}
		last = id
		switch e.Event {
		case events.GenDelta:
			var d struct {
				Seq  int64  `json:"seq"`
				Text string `json:"text"`
			}
			MustJSON(t, e.Data, &d)
			if d.Seq != id {
				t.Errorf("delta id %d, seq %d", id, d.Seq)
			}
			a.Text += d.Text
		case events.GenReset:
			a.Text = ""
		case events.GenDone:
			var d struct {
				Message events.Message `json:"message"`
			}
			MustJSON(t, e.Data, &d)
			a.Final, a.HasEnd = d.Message, true
		case events.GenError:
			var d struct {
				Error   events.Error   `json:"error"`
				Message events.Message `json:"message"`
			}
			MustJSON(t, e.Data, &d)
			a.Final, a.ErrCode, a.HasEnd = d.Message, d.Error.Code, true
		}
	}
	return a
}

// MustJSON decodes s into v or fails the test.
func MustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
}
