package security_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/libs/events"
)

// badInput is one generated bad request and the answers it may get.
type badInput struct {
	name   string
	method string
	path   string
	body   []byte
	header http.Header
	// want are the acceptable statuses (each a 4xx).
	want []int
}

// rowCounts counts the rows of every table a request could have changed.
func rowCounts(t *testing.T, s *stack) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"users", "sessions", "refresh_tokens", "chats", "messages", "outbox"} {
		var n int
		if err := s.db.Admin.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// testBadInput: drill (d), bounded. A few hundred generated bad inputs against every
// body-taking endpoint, the id routes, the headers and the methods: no 5xx, the right
// 4xx for each, and nothing reached the database.
func testBadInput(t *testing.T, s *stack) {
	s.use(t)
	u := s.user("sweep", false)
	c := u.CreateChat("sweep")
	sent := u.Send(c.ID, "first")
	u.ReadAnswer(sent.AssistantMessage.ID, nil)
	csrf := http.Header{"X-Parley-Csrf": {"1"}}

	type endpoint struct {
		method, path string
		valid        string
		fields       []string
		header       http.Header
	}
	endpoints := []endpoint{
		{"POST", "/api/chats/" + c.ID + "/messages", `{"content":"hello there"}`, []string{"content"}, nil},
		{"POST", "/api/chats", `{"title":"a chat","model":"` + model + `"}`, []string{"title", "model"}, nil},
		{"PATCH", "/api/chats/" + c.ID, `{"title":"renamed"}`, []string{"title", "model"}, nil},
		{"POST", "/api/auth/login", `{"username":"sweep","password":"irrelevant guess"}`, []string{"username", "password"}, csrf},
		{"POST", "/api/auth/signup", `{"username":"sweeper2","email":"s2@example.com","password":"long enough password 1","firstname":"A","lastname":"B"}`,
			[]string{"username", "email", "password"}, csrf},
		{"POST", "/api/auth/refresh", `{"refresh_token":"nope"}`, []string{"refresh_token"}, csrf},
	}
	bad400 := []int{http.StatusBadRequest}
	// Login and refresh answer bad credentials the same whatever was wrong.
	for i := range endpoints {
		if strings.HasPrefix(endpoints[i].path, "/api/auth/login") || strings.HasPrefix(endpoints[i].path, "/api/auth/refresh") {
			endpoints[i].header = csrf
		}
	}
	var inputs []badInput
	add := func(e endpoint, name string, body []byte, want []int) {
		if strings.HasPrefix(e.path, "/api/auth/login") || strings.HasPrefix(e.path, "/api/auth/refresh") {
			want = append(want, http.StatusUnauthorized)
		}
		inputs = append(inputs, badInput{name: name, method: e.method, path: e.path, body: body, header: e.header, want: want})
	}
	for _, e := range endpoints {
		// Every truncation of a valid body.
		for n := 1; n < len(e.valid); n++ {
			add(e, fmt.Sprintf("truncated at %d", n), []byte(e.valid[:n]), bad400)
		}
		// Wrong types for each field.
		for _, f := range e.fields {
			if !strings.Contains(e.valid, `"`+f+`":`) {
				continue
			}
			for _, v := range []string{`42`, `true`, `[]`, `{}`, `1.5`, `["a"]`, `{"$gt":""}`} {
				add(e, "field "+f+" = "+v, []byte(strings.Replace(e.valid, `"`+f+`":`, `"`+f+`":`+v+`,"x":`, 1)), bad400)
			}
		}
		for name, body := range map[string]string{
			"trailing garbage": e.valid + "x",
			"two objects":      e.valid + e.valid,
			"array":            "[" + e.valid + "]",
			"string":           `"` + strings.ReplaceAll(e.valid, `"`, `\"`) + `"`,
			"number":           `12`,
			"deep nesting":     `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
			"invalid utf-8":    strings.Replace(e.valid, `":"`, `":"`+"\xff\xfe", 1),
			"overlong utf-8":   strings.Replace(e.valid, `":"`, `":"`+"\xc0\xaf", 1),
			"utf-8 surrogate":  strings.Replace(e.valid, `":"`, `":"`+"\xed\xa0\x80", 1),
			"raw NUL":          strings.Replace(e.valid, `":"`, `":"`+"\x00", 1),
			"raw newline":      strings.Replace(e.valid, `":"`, `":"`+"a\nb", 1),
			"bare word":        `content`,
			"single quotes":    strings.ReplaceAll(e.valid, `"`, `'`),
		} {
			add(e, name, []byte(body), bad400)
		}
		if e.method == "POST" && e.path != "/api/chats" {
			add(e, "null", []byte(`null`), bad400)
		}
		add(e, "limit+1", []byte(`{"x":"`+strings.Repeat("a", 64<<10)+`"}`), []int{http.StatusRequestEntityTooLarge})
		add(e, "10 MB", []byte(`{"x":"`+strings.Repeat("a", 10<<20)+`"}`), []int{http.StatusRequestEntityTooLarge})
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/xml", ""} {
			h := http.Header{"Content-Type": {ct}}
			for k, v := range e.header {
				h[k] = v
			}
			inputs = append(inputs, badInput{name: "content type " + ct, method: e.method, path: e.path, body: []byte(e.valid), header: h,
				want: []int{http.StatusUnsupportedMediaType}})
		}
	}
	// Escapes that decode to what is not text: lone surrogates, NUL. (Other control
	// characters are kept as text; the SPA renders content as text, never as HTML.)
	for _, v := range []string{`\ud800`, `a\udfffb`, `\u0000`, `x\u0000y`} {
		inputs = append(inputs, badInput{name: "escape " + v, method: "POST", path: "/api/chats/" + c.ID + "/messages",
			body: []byte(`{"content":"` + v + `"}`), want: bad400})
	}
	// Ids that are not ids, on every id route.
	for _, id := range []string{"abc", "1", "-1", "00000000-0000-0000-0000-000000000000", "' OR 1=1 --", "%00", "%2e%2e%2f%2e%2e%2fetc",
		strings.Repeat("9", 200), "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ", "😀", "%ff%fe", c.ID + "x"} {
		p := url.PathEscape(id)
		if strings.HasPrefix(id, "%") {
			p = id
		}
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/chats/" + p}, {"PATCH", "/api/chats/" + p}, {"DELETE", "/api/chats/" + p},
			{"GET", "/api/chats/" + p + "/messages"}, {"POST", "/api/chats/" + p + "/messages"},
			{"POST", "/api/chats/" + p + "/regenerate"}, {"GET", "/api/chats/" + p + "/export"},
			{"GET", "/api/chats/" + p + "/events"}, {"GET", "/api/messages/" + p + "/stream"},
			{"POST", "/api/messages/" + p + "/cancel"},
		} {
			var body []byte
			if r.method != "GET" {
				body = []byte(`{"content":"x","title":"x"}`)
			}
			inputs = append(inputs, badInput{name: "id " + id, method: r.method, path: r.path, body: body,
				want: []int{http.StatusBadRequest, http.StatusNotFound}})
		}
	}
	// Query parameters out of range.
	for _, q := range []string{"limit=-1", "limit=abc", "limit=99999999999999999999", "before=not-an-id", "before=%00",
		"before=" + strings.Repeat("x", 600), "format=exe"} {
		path := "/api/chats/" + c.ID + "/messages?" + q
		if strings.HasPrefix(q, "format") {
			path = "/api/chats/" + c.ID + "/export?" + q
		}
		inputs = append(inputs, badInput{name: "query " + q, method: "GET", path: path, want: bad400})
	}
	inputs = append(inputs, badInput{name: "search too long", method: "GET", path: "/api/chats?q=" + strings.Repeat("q", 1000), want: bad400})
	// Methods a route does not have.
	for _, r := range []struct{ method, path string }{
		{"PUT", "/api/chats"}, {"DELETE", "/api/chats"}, {"PATCH", "/api/chats"}, {"POST", "/api/models"},
		{"PUT", "/api/chats/" + c.ID}, {"TRACE", "/api/chats/" + c.ID}, {"PROPFIND", "/api/chats/" + c.ID},
		{"GET", "/api/auth/login"}, {"DELETE", "/api/auth/me"}, {"POST", "/api/messages/" + sent.AssistantMessage.ID + "/stream"},
	} {
		inputs = append(inputs, badInput{name: "method", method: r.method, path: r.path, want: []int{http.StatusMethodNotAllowed}})
	}
	// Headers: over the 16 KiB limit, an 8 KiB cookie, a 1 MB bearer token.
	inputs = append(inputs,
		badInput{name: "24 KiB header", method: "GET", path: "/api/chats", header: http.Header{"X-Big": {strings.Repeat("h", 24<<10)}},
			want: []int{http.StatusRequestHeaderFieldsTooLarge}},
		badInput{name: "1 MB bearer", method: "GET", path: "/api/chats", header: http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 1<<20)}},
			want: []int{http.StatusRequestHeaderFieldsTooLarge}},
		badInput{name: "many headers", method: "GET", path: "/api/chats", header: manyHeaders(2000),
			want: []int{http.StatusRequestHeaderFieldsTooLarge}},
	)
	anon := s.NewClient(&http.Client{}, "")
	before := rowCounts(t, s)
	statuses := map[int]int{}
	for _, in := range inputs {
		cl := u
		if in.header.Get("Authorization") != "" {
			cl = anon
		}
		res := cl.Raw(in.method, in.path, in.body, in.header)
		statuses[res.Status]++
		ok := false
		for _, w := range in.want {
			ok = ok || res.Status == w
		}
		if !ok {
			t.Errorf("%s %s (%s): %d %.200s, want one of %v", in.method, in.path[:min(len(in.path), 80)], in.name, res.Status, res.Body, in.want)
		}
		if res.Status >= 500 {
			t.Errorf("%s %s (%s): %d", in.method, in.path[:min(len(in.path), 80)], in.name, res.Status)
		}
		if res.Status >= 400 && res.Status != http.StatusMethodNotAllowed && res.Status != http.StatusRequestHeaderFieldsTooLarge && res.Code() == "" {
			t.Errorf("%s %s (%s): %d without an error code: %.200s", in.method, in.path[:min(len(in.path), 80)], in.name, res.Status, res.Body)
		}
	}
	// Cookies too large to be a session are ignored: one generic 401.
	big := s.NewClient(nil, "")
	res := big.Raw("GET", "/api/chats", nil, http.Header{"Cookie": {"parley_at=" + strings.Repeat("c", 8<<10)}})
	if res.Status != http.StatusUnauthorized || res.Code() != events.CodeUnauthenticated {
		t.Errorf("8 KiB cookie: %d %s", res.Status, res.Body)
	}
	after := rowCounts(t, s)
	for table, n := range before {
		if after[table] != n {
			t.Errorf("%s: %d rows before the sweep, %d after", table, n, after[table])
		}
	}
	if msgs := u.Messages(c.ID); len(msgs) != 2 {
		t.Errorf("the sweep's chat has %d messages, want 2", len(msgs))
	}
	t.Logf("%d bad inputs, answers by status: %v", len(inputs)+1, statuses)
	if len(inputs) < 300 {
		t.Errorf("only %d inputs", len(inputs))
	}
}

func manyHeaders(n int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set(fmt.Sprintf("X-H%d", i), "value")
	}
	return h
}
