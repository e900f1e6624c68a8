package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// TestAPI runs every scenario against one running product; the scenarios use users of
// their own and run one after another (the fake's script is shared).
func TestAPI(t *testing.T) {
	s := newStack(t)
	t.Run("flow", func(t *testing.T) { testFlow(t, s) })
	t.Run("isolation", func(t *testing.T) { testIsolation(t, s) })
	t.Run("model sees only its chat", func(t *testing.T) { testModelContext(t, s) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, s) })
	t.Run("csrf", func(t *testing.T) { testCSRF(t, s) })
	t.Run("provider errors", func(t *testing.T) { testProviderErrors(t, s) })
	t.Run("cancel", func(t *testing.T) { testCancel(t, s) })
	t.Run("sessions", func(t *testing.T) { testSessions(t, s) })
}

func testFlow(t *testing.T, s *stack) {
	s.use(t)
	signedUp := s.SignUp("flow_ann")
	if signedUp.Username != "flow_ann" || signedUp.ID == "" {
		t.Fatalf("signup: %+v", signedUp)
	}
	browser := s.LogIn("flow_ann", true)
	api := s.LogIn("flow_ann@example.com", false)

	for _, c := range []*client{browser, api} {
		var me events.UserReply
		c.Call("GET", "/api/auth/me", nil, http.StatusOK, &me)
		if diff := cmp.Diff(signedUp, me.User); diff != "" {
			t.Errorf("me (-signup +me):\n%s", diff)
		}
		if strings.Contains(string(c.Raw("GET", "/api/auth/me", nil, nil).Body), "password") {
			t.Error("me mentions a password")
		}
	}

	var models events.ModelsReply
	browser.Call("GET", "/api/models", nil, http.StatusOK, &models)
	if len(models.Models) == 0 || !models.Models[0].Default {
		t.Fatalf("models: %+v (the default first)", models)
	}

	if res := browser.Raw("GET", "/api/chats/latest", nil, nil); res.Status != http.StatusNotFound || res.Code() != events.CodeNoChats {
		t.Fatalf("latest for a new user: %d %s", res.Status, res.Body)
	}

	c := browser.CreateChat("")
	if c.ID == "" || c.Model != models.Models[0].ID {
		t.Fatalf("created chat: %+v", c)
	}
	var latest events.ChatReply
	browser.Call("GET", "/api/chats/latest", nil, http.StatusOK, &latest)
	if latest.Chat.ID != c.ID {
		t.Fatalf("latest = %s, want %s", latest.Chat.ID, c.ID)
	}

	sent := browser.Send(c.ID, "Hello, Parley!")
	if sent.UserMessage.Status != events.StatusComplete || sent.AssistantMessage.Status != events.StatusPending {
		t.Fatalf("sent: %+v", sent)
	}
	res, evs := browser.ReadAnswer(sent.AssistantMessage.ID, nil)
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	a := collect(t, evs)
	if a.final.Status != events.StatusComplete || !strings.HasPrefix(a.text, "You said: Hello, Parley!") || a.text != a.final.Content {
		t.Fatalf("answer: %+v (events %v)", a, names(evs))
	}
	// Sequence numbers run without gaps (from 1 for a live answer; an answer that had
	// finished when the stream opened comes as its whole text and done, numbered n-1, n).
	first := 0
	_ = json.Unmarshal([]byte(evs[0].ID), &first)
	for i, e := range evs {
		if e.ID != jsonInt(first+i) || first < 1 {
			t.Fatalf("event %d has id %s (ids from %d)", i, e.ID, first)
		}
	}

	// A reconnect after n gets the rest only; a stream of a finished answer ends by itself.
	if len(evs) >= 2 {
		_, rest := browser.ReadAnswer(sent.AssistantMessage.ID, http.Header{"Last-Event-Id": {evs[0].ID}})
		if diff := cmp.Diff(evs[1:], rest); diff != "" {
			t.Errorf("resumed stream (-want +got):\n%s", diff)
		}
	}

	msgs := api.Messages(c.ID)
	if len(msgs) != 2 || msgs[0].Role != events.RoleUser || msgs[0].Content != "Hello, Parley!" ||
		msgs[1].Role != events.RoleAssistant || msgs[1].Content != a.text || msgs[1].Status != events.StatusComplete {
		t.Fatalf("messages: %+v", msgs)
	}

	var patched events.ChatReply
	api.Call("PATCH", "/api/chats/"+c.ID, map[string]string{"title": "Greetings"}, http.StatusOK, &patched)
	if patched.Chat.Title != "Greetings" {
		t.Errorf("patched title = %q", patched.Chat.Title)
	}
	var list events.ListChatsReply
	browser.Call("GET", "/api/chats?q=Greetings", nil, http.StatusOK, &list)
	if len(list.Chats) != 1 || list.Chats[0].ID != c.ID {
		t.Errorf("search: %+v", list)
	}

	md := browser.Raw("GET", "/api/chats/"+c.ID+"/export?format=markdown", nil, nil)
	if md.Status != http.StatusOK || !strings.HasPrefix(md.Header.Get("Content-Disposition"), "attachment;") ||
		!strings.Contains(string(md.Body), "Hello, Parley!") || !strings.Contains(string(md.Body), a.text) {
		t.Errorf("markdown export: %d %v %s", md.Status, md.Header, md.Body)
	}
	js := browser.Raw("GET", "/api/chats/"+c.ID+"/export?format=json", nil, nil)
	var doc struct {
		Chat     events.Chat      `json:"chat"`
		Messages []events.Message `json:"messages"`
	}
	if js.Status != http.StatusOK || json.Unmarshal(js.Body, &doc) != nil || len(doc.Messages) != 2 || doc.Chat.ID != c.ID {
		t.Errorf("json export: %d %s", js.Status, js.Body)
	}

	// Delete: the chat and its messages go.
	other := api.CreateChat("to delete")
	api.Call("DELETE", "/api/chats/"+other.ID, nil, http.StatusNoContent, nil)
	if res := api.Raw("GET", "/api/chats/"+other.ID, nil, nil); res.Status != http.StatusNotFound {
		t.Errorf("deleted chat: %d", res.Status)
	}

	// Logout ends the session at once: the old cookie and token no longer work.
	oldCookies := browser.HTTP.Jar.Cookies(mustURL(s.base))
	out := browser.Raw("POST", "/api/auth/logout", nil, nil)
	if out.Status != http.StatusNoContent || out.Header.Get("Clear-Site-Data") != `"cookies"` {
		t.Fatalf("logout: %d %v", out.Status, out.Header)
	}
	replay := s.NewBrowser()
	replay.HTTP.Jar.SetCookies(mustURL(s.base), oldCookies)
	if res := replay.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("old browser session after logout: %d %s", res.Status, res.Body)
	}
	api.Call("POST", "/api/auth/logout", nil, http.StatusNoContent, nil)
	if res := api.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("bearer token after logout: %d", res.Status)
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// testIsolation: user B gets 404 on every route with A's ids, and A's data is unchanged.
func testIsolation(t *testing.T, s *stack) {
	s.use(t)
	a := s.user("iso_alice", false)
	b := s.user("iso_bob", false)
	canary := "canary-alice-7f3e"
	ac := a.CreateChat("alice " + canary)
	sent := a.Send(ac.ID, "secret "+canary)
	a.ReadAnswer(sent.AssistantMessage.ID, nil)
	bc := b.CreateChat("bob's own")

	snapshot := func() (events.Chat, []events.Message) {
		var c events.ChatReply
		a.Call("GET", "/api/chats/"+ac.ID, nil, http.StatusOK, &c)
		return c.Chat, a.Messages(ac.ID)
	}
	chatBefore, msgsBefore := snapshot()

	routes, err := gateway.Routes()
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]string{
		"POST /api/chats/{chatID}/messages": `{"content":"hijack"}`,
		"PATCH /api/chats/{chatID}":         `{"title":"hijacked"}`,
	}
	covered := 0
	for _, r := range routes {
		if !strings.Contains(r.Pattern, "{") {
			continue
		}
		var paths []string
		switch {
		case strings.Contains(r.Pattern, "{chatID}"):
			paths = []string{strings.ReplaceAll(r.Pattern, "{chatID}", ac.ID)}
		case strings.Contains(r.Pattern, "{messageID}"):
			paths = []string{
				strings.ReplaceAll(r.Pattern, "{messageID}", sent.AssistantMessage.ID),
				strings.ReplaceAll(r.Pattern, "{messageID}", sent.UserMessage.ID),
			}
		default:
			t.Fatalf("route %s %s has a parameter this test does not know", r.Method, r.Pattern)
		}
		covered++
		for _, p := range paths {
			var body []byte
			if v, ok := bodies[r.Method+" "+r.Pattern]; ok {
				body = []byte(v)
			} else if r.Method != http.MethodGet {
				body = []byte(`{}`)
			}
			res := b.Raw(r.Method, p, body, nil)
			if res.Status != http.StatusNotFound || res.Code() != events.CodeNotFound {
				t.Errorf("B %s %s: %d %s, want 404 not_found", r.Method, p, res.Status, res.Body)
			}
			if strings.Contains(string(res.Body), canary) {
				t.Errorf("B %s %s: response carries A's data", r.Method, p)
			}
		}
	}
	// GET, PATCH, DELETE chat; list, send; regenerate; export; events; stream; cancel.
	if covered != 10 {
		t.Errorf("%d routes with ids covered, want 10: update this test for new routes", covered)
	}
	// A's chat id combined with B's own message, and B's chat with A's message.
	if res := b.Raw("GET", "/api/chats/"+bc.ID+"/messages?before="+sent.UserMessage.ID, nil, nil); res.Status == http.StatusOK &&
		strings.Contains(string(res.Body), canary) {
		t.Errorf("B's chat listing leaks A's messages: %s", res.Body)
	}
	// B's lists and searches do not show A's chat.
	var list events.ListChatsReply
	b.Call("GET", "/api/chats?q="+canary, nil, http.StatusOK, &list)
	if len(list.Chats) != 0 {
		t.Errorf("B's search found %+v", list.Chats)
	}
	var latest events.ChatReply
	b.Call("GET", "/api/chats/latest", nil, http.StatusOK, &latest)
	if latest.Chat.ID != bc.ID {
		t.Errorf("B's latest = %s", latest.Chat.ID)
	}

	chatAfter, msgsAfter := snapshot()
	if diff := cmp.Diff(chatBefore, chatAfter); diff != "" {
		t.Errorf("A's chat changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(msgsBefore, msgsAfter); diff != "" {
		t.Errorf("A's messages changed (-before +after):\n%s", diff)
	}
}

// testModelContext: the model only ever receives the current chat's messages.
func testModelContext(t *testing.T, s *stack) {
	s.use(t)
	a := s.user("ctx_alice", false)
	b := s.user("ctx_bob", true)
	chats := map[string]*client{}
	type conv struct {
		c   *client
		id  string
		tag string
	}
	var convs []conv
	for i, c := range []*client{a, a, b} {
		ch := c.CreateChat("")
		tag := []string{"[chat-one]", "[chat-two]", "[chat-three]"}[i]
		chats[ch.ID] = c
		convs = append(convs, conv{c, ch.ID, tag})
	}
	// Interleave two turns in each chat.
	for turn := range 2 {
		for _, cv := range convs {
			sent := cv.c.Send(cv.id, cv.tag+" turn "+jsonInt(turn))
			_, evs := cv.c.ReadAnswer(sent.AssistantMessage.ID, nil)
			if got := collect(t, evs); got.final.Status != events.StatusComplete {
				t.Fatalf("answer in %s: %+v", cv.tag, got)
			}
		}
	}
	seen := 0
	for _, r := range s.hf.ChatRequests() {
		if r.Chat == nil {
			continue
		}
		var tag string
		for _, m := range r.Chat.Messages {
			if m.Role != "user" && m.Role != "assistant" {
				continue
			}
			for _, cv := range convs {
				if strings.Contains(m.Content, cv.tag) {
					if tag != "" && tag != cv.tag {
						t.Errorf("one model request mixes %s and %s: %+v", tag, cv.tag, r.Chat.Messages)
					}
					tag = cv.tag
				}
			}
		}
		if tag != "" && !e2e.IsTitle(r) {
			seen++
			// The second turn sees its own first exchange: 2 user turns and 1 answer.
			if strings.Contains(r.Chat.LastUser(), "turn 1") {
				n := 0
				for _, m := range r.Chat.Messages {
					if m.Role == "user" || m.Role == "assistant" {
						n++
					}
				}
				if n != 3 {
					t.Errorf("%s turn 1 sent %d turns, want 3", tag, n)
				}
			}
		}
	}
	if seen != 6 {
		t.Errorf("the model saw %d requests of these chats, want 6", seen)
	}
}

// testBadInput: bad requests get their documented errors and change nothing.
func testBadInput(t *testing.T, s *stack) {
	s.use(t)
	u := s.user("bad_input", false)
	c := u.CreateChat("inputs")
	before := u.Messages(c.ID)
	long := strings.Repeat("a", events.MaxMessageChars+1)
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"malformed", `{"content":`, 400, events.CodeInvalidJSON},
		{"trailing", `{"content":"hi"} {}`, 400, events.CodeInvalidJSON},
		{"wrong type", `{"content":42}`, 400, events.CodeInvalidJSON},
		{"invalid utf-8", "{\"content\":\"\xff\"}", 400, events.CodeInvalidJSON},
		{"blank", `{"content":"   \n "}`, 400, events.CodeInvalidInput},
		{"too long", `{"content":"` + long + `"}`, 400, events.CodeInvalidInput},
		{"over 64 KiB", `{"content":"` + strings.Repeat("b", 70<<10) + `"}`, 413, events.CodePayloadTooLarge},
	}
	for _, tt := range tests {
		res := u.Raw("POST", "/api/chats/"+c.ID+"/messages", []byte(tt.body), nil)
		if res.Status != tt.status || res.Code() != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, res.Status, res.Body, tt.status, tt.code)
		}
	}
	res := u.Raw("POST", "/api/chats/"+c.ID+"/messages", []byte(`{"content":"hi"}`), http.Header{"Content-Type": {"text/plain"}})
	if res.Status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", res.Status)
	}

	// Forged and tampered tokens: one generic 401, nothing done.
	parts := strings.Split(u.Token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	claims["exp"] = time.Now().Add(24 * time.Hour).Unix()
	edited, _ := json.Marshal(claims)
	tokens := map[string]string{
		"tampered payload": parts[0] + "." + base64.RawURLEncoding.EncodeToString(edited) + "." + parts[2],
		"alg none":         base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",
		"truncated":        parts[0] + "." + parts[1],
		"bad signature":    parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)),
		"garbage":          "garbage",
	}
	var first string
	for name, tok := range tokens {
		forged := s.NewClient(u.HTTP, tok)
		res := forged.Raw("POST", "/api/chats/"+c.ID+"/messages", []byte(`{"content":"forged"}`), nil)
		if res.Status != http.StatusUnauthorized || res.Code() != events.CodeUnauthenticated {
			t.Errorf("%s: %d %s", name, res.Status, res.Body)
		}
		if first == "" {
			first = string(res.Body)
		} else if string(res.Body) != first {
			t.Errorf("%s: body %s differs from %s", name, res.Body, first)
		}
	}
	if diff := cmp.Diff(before, u.Messages(c.ID)); diff != "" {
		t.Errorf("messages changed (-before +after):\n%s", diff)
	}
}

// testCSRF: a cookie request without the header or from another site is refused.
func testCSRF(t *testing.T, s *stack) {
	s.use(t)
	browser := s.user("csrf_carol", true)
	api := s.LogIn("csrf_carol", false)
	count := func() int {
		var l events.ListChatsReply
		api.Call("GET", "/api/chats", nil, http.StatusOK, &l)
		return len(l.Chats)
	}
	n := count()
	bare := s.NewClient(browser.HTTP, "") // cookies, no CSRF header
	for name, h := range map[string]http.Header{
		"no header":        nil,
		"cross-site":       {"X-Parley-Csrf": {"1"}, "Sec-Fetch-Site": {"cross-site"}},
		"foreign origin":   {"X-Parley-Csrf": {"1"}, "Origin": {"https://evil.example"}},
		"same-site origin": {"X-Parley-Csrf": {"1"}, "Sec-Fetch-Site": {"same-site"}},
	} {
		res := bare.Raw("POST", "/api/chats", []byte(`{"title":"forged"}`), h)
		if res.Status != http.StatusForbidden || res.Code() != events.CodeCSRFRejected {
			t.Errorf("%s: %d %s", name, res.Status, res.Body)
		}
	}
	if res := bare.Raw("POST", "/api/auth/login", []byte(`{"username":"csrf_carol","password":"`+password+`"}`), nil); res.Status != http.StatusForbidden {
		t.Errorf("login without header: %d", res.Status)
	}
	if got := count(); got != n {
		t.Fatalf("chats: %d, want %d", got, n)
	}
	// Same requests with a bearer token are not affected.
	api.Call("POST", "/api/chats", map[string]string{"title": "bearer"}, http.StatusCreated, nil)
	browser.Call("POST", "/api/chats", map[string]string{"title": "browser"}, http.StatusCreated, nil)
	if got := count(); got != n+2 {
		t.Fatalf("chats: %d, want %d", got, n+2)
	}
}

// testProviderErrors: provider failures surface as the documented stream events and
// stored statuses.
func testProviderErrors(t *testing.T, s *stack) {
	s.use(t)
	u := s.user("prov_dave", false)
	tests := []struct {
		name       string
		steps      []fakehf.Step
		status     string
		code       string
		mustSee    []string // event names that must occur
		fullAnswer bool
	}{
		{"401", []fakehf.Step{preset(t, "401")}, events.StatusFailed, events.CodeProviderAuth, []string{"error"}, false},
		{"404", []fakehf.Step{preset(t, "404")}, events.StatusFailed, events.CodeModelNotFound, []string{"error"}, false},
		{"429 then success", []fakehf.Step{preset(t, "429")}, events.StatusComplete, "", []string{"waiting", "done"}, true},
		{"503 then success", []fakehf.Step{preset(t, "503")}, events.StatusComplete, "", []string{"waiting", "done"}, true},
		{"mid-stream error", []fakehf.Step{fakehf.MidStreamError(2, fakehf.StreamErrTGI)}, events.StatusFailed, "", []string{"delta", "error"}, false},
		{"dropped connection then success", []fakehf.Step{fakehf.Drop(2)}, events.StatusComplete, "", []string{"delta", "reset", "done"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := u.CreateChat(tt.name)
			s.hf.Enqueue("", tt.steps...)
			sent := u.Send(c.ID, "question for "+tt.name)
			_, evs := u.ReadAnswer(sent.AssistantMessage.ID, nil)
			a := collect(t, evs)
			got := names(evs)
			for _, want := range tt.mustSee {
				if !slices.Contains(got, want) {
					t.Errorf("events %v lack %s", got, want)
				}
			}
			msgs := u.Messages(c.ID)
			stored := msgs[len(msgs)-1]
			if stored.Status != tt.status || a.final.Status != tt.status {
				t.Fatalf("status: stored %s, streamed %s, want %s (events %v)", stored.Status, a.final.Status, tt.status, got)
			}
			if tt.status == events.StatusFailed {
				if stored.Error == nil || a.errCode == "" || stored.Error.Code != a.errCode {
					t.Errorf("error: stored %+v, streamed %q", stored.Error, a.errCode)
				}
				if tt.code != "" && a.errCode != tt.code {
					t.Errorf("error code %q, want %q", a.errCode, tt.code)
				}
			}
			if tt.fullAnswer && (a.text != stored.Content || !strings.HasPrefix(stored.Content, "You said: question for "+tt.name)) {
				t.Errorf("answer %q, stored %q", a.text, stored.Content)
			}
			if diff := cmp.Diff(stored, a.final, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
				t.Errorf("streamed final message differs from the stored one (-stored +streamed):\n%s", diff)
			}
		})
	}
}

func preset(t *testing.T, name string) fakehf.Step {
	t.Helper()
	st, ok := fakehf.Preset(name)
	if !ok {
		t.Fatalf("no preset %s", name)
	}
	return st
}

// testCancel: cancelling a running answer ends its stream with a cancelled message.
func testCancel(t *testing.T, s *stack) {
	s.use(t)
	u := s.user("cancel_erin", false)
	c := u.CreateChat("cancel")
	s.hf.Enqueue("", fakehf.Step{Delay: 20 * time.Second})
	sent := u.Send(c.ID, "take your time")
	var rep events.MessageReply
	u.Call("POST", "/api/messages/"+sent.AssistantMessage.ID+"/cancel", nil, http.StatusAccepted, &rep)
	_, evs := u.ReadAnswer(sent.AssistantMessage.ID, nil)
	a := collect(t, evs)
	if a.final.Status != events.StatusCancelled {
		t.Fatalf("after cancel: %+v (events %v)", a.final, names(evs))
	}
	if res := u.Raw("POST", "/api/messages/"+sent.AssistantMessage.ID+"/cancel", nil, nil); res.Status != http.StatusConflict || res.Code() != events.CodeNotRunning {
		t.Errorf("second cancel: %d %s", res.Status, res.Body)
	}
}

// testSessions: transparent refresh for browsers, refresh for API clients, logout-all.
func testSessions(t *testing.T, s *stack) {
	s.use(t)
	browser := s.user("sess_frank", true)
	u := mustURL(s.base)
	// Drop the access cookie: the refresh cookie brings the session back by itself.
	var keep []*http.Cookie
	for _, c := range browser.HTTP.Jar.Cookies(u) {
		if c.Name != "parley_at" {
			keep = append(keep, c)
		}
	}
	fresh := s.NewBrowser()
	fresh.HTTP.Jar.SetCookies(u, keep)
	res := fresh.Raw("GET", "/api/auth/me", nil, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("me with the refresh cookie only: %d %s", res.Status, res.Body)
	}
	if !slices.ContainsFunc(fresh.HTTP.Jar.Cookies(u), func(c *http.Cookie) bool { return c.Name == "parley_at" }) {
		t.Errorf("no new access cookie: %v", res.Header.Values("Set-Cookie"))
	}

	// API client refresh rotates the refresh token.
	c := s.NewBrowser()
	var login loginReply
	c.Call("POST", "/api/auth/login", map[string]string{"username": "sess_frank", "password": password}, http.StatusOK, &login)
	var rotated loginReply
	c.Call("POST", "/api/auth/refresh", map[string]string{"refresh_token": login.RefreshToken}, http.StatusOK, &rotated)
	if rotated.AccessToken == "" || rotated.RefreshToken == "" || rotated.RefreshToken == login.RefreshToken {
		t.Errorf("refresh: %+v", rotated)
	}
	if res := s.NewBrowser().Raw("POST", "/api/auth/refresh", []byte(`{"refresh_token":"nope"}`), nil); res.Status != http.StatusUnauthorized {
		t.Errorf("refresh with a bad token: %d", res.Status)
	}

	// Log out everywhere: every earlier token stops working.
	api := s.NewClient(&http.Client{}, rotated.AccessToken)
	api.Call("GET", "/api/auth/me", nil, http.StatusOK, nil)
	browser.Call("POST", "/api/auth/logout-all", nil, http.StatusNoContent, nil)
	if res := api.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("other session after logout-all: %d", res.Status)
	}
}
