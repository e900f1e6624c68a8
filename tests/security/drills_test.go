package security_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/gateway"
)

// from makes a browser client that appears to come from ip (the gateways trust
// X-Forwarded-For from the test's loopback address, as from a proxy).
func (s *stack) from(ip string) *client {
	c := s.NewBrowser()
	c.Forwarded = ip
	return c
}

// testBruteForce: drill (g). One attacker guessing one account's password gets 429
// with Retry-After after five failures, blocked attempts are not even evaluated, the
// owner coming from elsewhere is not locked out, the owner from the same address gets
// in once the delay is over, and an unknown user looks exactly like a wrong password.
func testBruteForce(t *testing.T, s *stack) {
	s.use(t)
	name := "brute_" + randomHex(3)
	s.SignUp(name)
	login := func(c *client, user, pw string) response {
		return c.Raw("POST", "/api/auth/login", mustJSON(map[string]string{"username": user, "password": pw}), nil)
	}
	attacker := s.from("203.0.113.66")
	var wrongBody []byte
	for i := range 5 {
		res := login(attacker, name, fmt.Sprintf("guess number %d is wrong", i))
		if res.Status != http.StatusUnauthorized || res.Code() != events.CodeInvalidCredentials {
			t.Fatalf("guess %d: %d %s", i, res.Status, res.Body)
		}
		wrongBody = res.Body
	}
	// A few guesses, not many: the first block lasts about a second, and on a busy
	// machine many round trips could outlast it (a guess after the block is a real,
	// counted attempt, answered 401).
	var retry int
	for i := range 4 {
		res := login(attacker, name, fmt.Sprintf("blocked guess %d", i))
		if res.Status != http.StatusTooManyRequests || res.Code() != events.CodeTooManyAttempts {
			t.Fatalf("blocked guess %d: %d %s", i, res.Status, res.Body)
		}
		n, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil || n < 1 || n > 2 {
			t.Fatalf("blocked guess %d: Retry-After %q, want 1..2 s (hammering must not extend the block)", i, res.Header.Get("Retry-After"))
		}
		retry = n
	}
	// The right password from the attacker's address is refused while blocked too.
	if res := login(attacker, name, password); res.Status != http.StatusTooManyRequests {
		t.Errorf("right password while blocked: %d", res.Status)
	}
	// The owner, elsewhere, is not locked out by one attacker.
	if res := login(s.from("198.51.100.10"), name, password); res.Status != http.StatusOK {
		t.Errorf("owner from another address during the attack: %d %s", res.Status, res.Body)
	}
	// The owner behind the attacker's address gets in once the delay is over.
	time.Sleep(time.Duration(retry)*time.Second + 200*time.Millisecond)
	if res := login(attacker, name, password); res.Status != http.StatusOK {
		t.Errorf("owner after the delay: %d %s", res.Status, res.Body)
	}

	// Unknown user and wrong password: same status, same body, same throttling.
	ghost := s.from("203.0.113.67")
	for i := range 5 {
		res := login(ghost, "ghost_"+randomHex(2)+"_never_signed_up", "some password guess")
		if i == 0 && res.Status == http.StatusUnauthorized && !bytes.Equal(res.Body, wrongBody) {
			t.Errorf("unknown user: %s, wrong password: %s", res.Body, wrongBody)
		}
		if res.Status != http.StatusUnauthorized {
			t.Errorf("unknown user %d: %d", i, res.Status)
		}
	}
	const ghostName = "ghost_fixed_never_signed_up"
	for range 5 {
		login(ghost, ghostName, "some password guess")
	}
	if res := login(ghost, ghostName, "some password guess"); res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("unknown user after 5 failures: %d (want 429 like a real account)", res.Status)
	}
	// Timing is not asserted here (see docs/security.md): both paths run one argon2id.
	var known, unknown []time.Duration
	for i := range 10 {
		c := s.from(fmt.Sprintf("192.0.2.%d", 10+i))
		start := time.Now()
		login(c, name, "wrong password for timing")
		known = append(known, time.Since(start))
		start = time.Now()
		login(c, "nobody_"+randomHex(3), "wrong password for timing")
		unknown = append(unknown, time.Since(start))
	}
	t.Logf("login median: existing user %v, unknown user %v", median(known), median(unknown))

	// Per client address: the limited gateway allows 5 auth attempts a minute per IP.
	ip := s.from("203.0.113.99")
	ip.Base = s.limited
	var limited response
	for range 8 {
		limited = login(ip, "ghost_"+randomHex(3), "whatever password")
		if limited.Status == http.StatusTooManyRequests {
			break
		}
	}
	if limited.Status != http.StatusTooManyRequests || limited.Header.Get("Retry-After") == "" {
		t.Errorf("per-IP login limit: %d %v", limited.Status, limited.Header)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// testSendLimit: a user's message sends are limited per user (3 a minute on the
// limited gateway); another user is not affected.
func testSendLimit(t *testing.T, s *stack) {
	s.use(t)
	a := s.user("send_limit_a", false)
	b := s.user("send_limit_b", false)
	a.Base, b.Base = s.limited, s.limited
	ca, cb := a.CreateChat("limits"), b.CreateChat("limits")
	var last response
	for i := range 6 {
		last = a.Raw("POST", "/api/chats/"+ca.ID+"/messages", mustJSON(map[string]string{"content": fmt.Sprintf("message %d", i)}), nil)
		if last.Status == http.StatusTooManyRequests {
			if i < 3 {
				t.Errorf("limited after %d sends", i)
			}
			break
		}
	}
	if last.Status != http.StatusTooManyRequests || last.Code() != events.CodeRateLimited || last.Header.Get("Retry-After") == "" {
		t.Errorf("7th send: %d %s %v", last.Status, last.Body, last.Header)
	}
	b.Call("POST", "/api/chats/"+cb.ID+"/messages", map[string]string{"content": "mine"}, http.StatusAccepted, nil)
}

// testCSRF: a cross-site form post with the session cookie is refused with 403
// csrf_rejected and changes nothing; so are cross-site JSON requests and requests
// without the custom header; bearer clients are unaffected.
func testCSRF(t *testing.T, s *stack) {
	s.use(t)
	browser := s.user("csrf", true)
	api := s.LogIn(browser.User.Username, false)
	count := func() int {
		var l events.ListChatsReply
		api.Call("GET", "/api/chats", nil, http.StatusOK, &l)
		return len(l.Chats)
	}
	n := count()
	forms := map[string]http.Header{
		"form post": {"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"},
			"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}, "X-Parley-Csrf": nil},
		"multipart form": {"Content-Type": {"multipart/form-data; boundary=x"}, "Origin": {"https://evil.example"},
			"Sec-Fetch-Site": {"cross-site"}, "X-Parley-Csrf": nil},
		"text/plain fetch": {"Content-Type": {"text/plain"}, "Origin": {"https://evil.example"},
			"Sec-Fetch-Site": {"cross-site"}, "X-Parley-Csrf": nil},
		"form, old browser (Origin only)":      {"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"}, "X-Parley-Csrf": nil},
		"form, same-site sibling":              {"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"same-site"}, "X-Parley-Csrf": nil},
		"json with the header, cross-site":     {"Sec-Fetch-Site": {"cross-site"}},
		"json with the header, foreign origin": {"Origin": {"https://evil.example"}},
		"json without the header, same origin": {"Sec-Fetch-Site": {"same-origin"}, "X-Parley-Csrf": nil},
	}
	for name, h := range forms {
		for _, path := range []string{"/api/chats", "/api/auth/logout", "/api/auth/logout-all"} {
			res := browser.Raw("POST", path, []byte(`title=forged`), h)
			if res.Status != http.StatusForbidden || res.Code() != events.CodeCSRFRejected {
				t.Errorf("%s %s: %d %s, want 403 csrf_rejected", name, path, res.Status, res.Body)
			}
		}
	}
	// Login CSRF: a forged login is refused the same way.
	if res := s.NewClient(nil, "").Raw("POST", "/api/auth/login", []byte(`username=x&password=y`),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"cross-site"}}); res.Status != http.StatusForbidden || res.Code() != events.CodeCSRFRejected {
		t.Errorf("cross-site login form: %d %s", res.Status, res.Body)
	}
	if got := count(); got != n {
		t.Fatalf("chats: %d, want %d", got, n)
	}
	browser.Call("GET", "/api/auth/me", nil, http.StatusOK, nil) // still logged in
	// Bearer clients are not cookie-authenticated: no CSRF checks apply.
	if res := api.Raw("POST", "/api/chats", mustJSON(map[string]string{"title": "bearer"}), http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://elsewhere.example"}}); res.Status != http.StatusCreated {
		t.Errorf("bearer from another origin: %d %s", res.Status, res.Body)
	}
	browser.Call("POST", "/api/chats", map[string]string{"title": "same origin"}, http.StatusCreated, nil)
}

// testHeaders: the security headers on the SPA, its assets, API answers and errors,
// and the cookie attributes over HTTP and behind HTTPS.
func testHeaders(t *testing.T, s *stack) {
	s.use(t)
	c := s.NewBrowser()
	for _, path := range []string{"/", "/index.html", "/chats/deep/link", "/assets/app.js", "/api/models", "/api/nowhere", "/healthz", "/readyz"} {
		res := c.Raw("GET", path, nil, nil)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'",
			"frame-ancestors 'none'", "form-action 'self'", "connect-src 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, d)
			}
		}
		if d := directive(csp, "script-src"); strings.Contains(csp, "unsafe-eval") || d != "script-src 'self'" {
			t.Errorf("%s: CSP allows unsafe script: %s", path, csp)
		}
		want := map[string]string{
			"X-Content-Type-Options":     "nosniff",
			"Referrer-Policy":            "strict-origin-when-cross-origin",
			"X-Frame-Options":            "DENY",
			"Cross-Origin-Opener-Policy": "same-origin",
		}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
		if h.Get("Server") != "" || h.Get("X-Powered-By") != "" {
			t.Errorf("%s: server banner %q %q", path, h.Get("Server"), h.Get("X-Powered-By"))
		}
		if strings.HasPrefix(path, "/api/") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, h.Get("Cache-Control"))
		}
	}
	// The SPA's index uses only same-origin scripts (the policy above lets it run).
	if res := c.Raw("GET", "/", nil, nil); !bytes.Contains(res.Body, []byte(`src="/assets/app.js"`)) || bytes.Contains(res.Body, []byte("<script>")) {
		t.Errorf("index: %s", res.Body)
	}

	// Cookies over plain HTTP: HttpOnly, SameSite=Strict, Path=/.
	name := "cookie_" + randomHex(3)
	s.SignUp(name)
	res := s.NewBrowser().Raw("POST", "/api/auth/login", mustJSON(map[string]string{"username": name, "password": password}), nil)
	checkCookies(t, res, "parley_at", "parley_rt", false)
	// Behind TLS (COOKIE_SECURE): __Host- names, Secure, no Domain, and HSTS.
	secure := s.NewBrowser()
	secure.Base = s.limited
	res = secure.Raw("POST", "/api/auth/login", mustJSON(map[string]string{"username": name, "password": password}), nil)
	checkCookies(t, res, "__Host-parley_at", "__Host-parley_rt", true)
	if hsts := res.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=31536000") || !strings.Contains(hsts, "includeSubDomains") {
		t.Errorf("HSTS = %q", hsts)
	}
	// Logout clears the site's cookies.
	if out := secure.Raw("POST", "/api/auth/logout", nil, http.Header{"Authorization": {"Bearer " + loginToken(t, res)}}); out.Header.Get("Clear-Site-Data") != `"cookies"` {
		t.Errorf("logout: Clear-Site-Data %q", out.Header.Get("Clear-Site-Data"))
	}
}

// directive returns one directive of a Content-Security-Policy.
func directive(csp, name string) string {
	for d := range strings.SplitSeq(csp, ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, name+" ") {
			return d
		}
	}
	return ""
}

func loginToken(t *testing.T, res response) string {
	t.Helper()
	var rep loginReply
	if err := json.Unmarshal(res.Body, &rep); err != nil || rep.AccessToken == "" {
		t.Fatalf("login reply: %s", res.Body)
	}
	return rep.AccessToken
}

func checkCookies(t *testing.T, res response, access, refresh string, secure bool) {
	t.Helper()
	if res.Status != http.StatusOK {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}
	got := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		got[c.Name] = c
	}
	for _, name := range []string{access, refresh} {
		c := got[name]
		if c == nil {
			t.Errorf("no cookie %s in %v", name, res.Header.Values("Set-Cookie"))
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || c.Secure != secure || c.MaxAge <= 0 {
			t.Errorf("cookie %s: %+v", name, c)
		}
	}
	if secure {
		for _, raw := range res.Header.Values("Set-Cookie") {
			if !strings.HasPrefix(raw, "__Host-") {
				t.Errorf("over HTTPS a cookie without the __Host- prefix: %s", raw)
			}
		}
	}
}

// testIDOR: drill (e), extending tests/api's isolation test: for every route of the
// gateway with an id, user B gets the same 404 with A's ids, with guessed neighbours
// of A's ids and with random ids; B's own chat combined with A's message ids leaks
// nothing; routes without ids show B nothing of A's; A's rows are unchanged.
func testIDOR(t *testing.T, s *stack) {
	s.use(t)
	a := s.user("idor_a", false)
	b := s.user("idor_b", false)
	canary := "canary-" + randomHex(6)
	ac := a.CreateChat("A " + canary)
	sent := a.Send(ac.ID, "secret "+canary)
	a.ReadAnswer(sent.AssistantMessage.ID, nil)
	bc := b.CreateChat("B's own")
	bsent := b.Send(bc.ID, "hello")
	b.ReadAnswer(bsent.AssistantMessage.ID, nil)

	// A's rows as stored (every column), to show nothing of A's changed.
	snapshot := func() string { return s.userRows(t, a.User.ID) }
	before := snapshot()

	routes, err := gateway.Routes()
	if err != nil {
		t.Fatal(err)
	}
	neighbour := func(id string) string {
		// UUIDv7 ids are time-ordered: flip the last hex digit for a plausible guess.
		last := id[len(id)-1]
		repl := byte('0')
		if last == '0' {
			repl = '1'
		}
		return id[:len(id)-1] + string(repl)
	}
	randomID := "01a2184f-a915-7730-8630-" + randomHex(6)
	var notFound []byte
	covered := map[string]bool{}
	for _, r := range routes {
		key := r.Method + " " + r.Pattern
		if !strings.Contains(r.Pattern, "{") {
			continue
		}
		var paths []string
		for _, id := range []string{"A", "neighbour", "random"} {
			chatID, msgID := ac.ID, sent.AssistantMessage.ID
			switch id {
			case "neighbour":
				chatID, msgID = neighbour(bc.ID), neighbour(bsent.AssistantMessage.ID)
			case "random":
				chatID, msgID = randomID, randomID
			}
			p := strings.ReplaceAll(strings.ReplaceAll(r.Pattern, "{chatID}", chatID), "{messageID}", msgID)
			if strings.Contains(p, "{") {
				t.Fatalf("route %s has a parameter this test does not know", key)
			}
			paths = append(paths, p)
			if strings.Contains(r.Pattern, "{messageID}") {
				paths = append(paths, strings.ReplaceAll(r.Pattern, "{messageID}", sent.UserMessage.ID))
			}
		}
		covered[key] = true
		for _, p := range paths {
			var body []byte
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				body = []byte(`{"title":"hijacked","content":"hijack"}`)
			}
			res := b.Raw(r.Method, p, body, nil)
			if res.Status != http.StatusNotFound || res.Code() != events.CodeNotFound {
				t.Errorf("B %s %s: %d %s, want 404 not_found", r.Method, p, res.Status, res.Body)
				continue
			}
			if notFound == nil {
				notFound = res.Body
			} else if !bytes.Equal(res.Body, notFound) {
				t.Errorf("B %s %s: 404 body %s differs from %s", r.Method, p, res.Body, notFound)
			}
			if bytes.Contains(res.Body, []byte(canary)) {
				t.Errorf("B %s %s: response carries A's data", r.Method, p)
			}
		}
	}
	if len(covered) < 10 {
		t.Errorf("covered %d routes with ids, want every one (10 or more)", len(covered))
	}
	// B's own chat combined with A's message ids, and B's own lists.
	for _, p := range []string{
		"/api/chats/" + bc.ID + "/messages?before=" + sent.UserMessage.ID,
		"/api/chats/" + bc.ID + "/messages?after=" + sent.AssistantMessage.ID,
		"/api/chats?q=" + canary, "/api/chats", "/api/chats/latest",
		"/api/chats/" + bc.ID + "/export?format=json",
	} {
		if res := b.Raw("GET", p, nil, nil); bytes.Contains(res.Body, []byte(canary)) || res.Status >= 500 {
			t.Errorf("B GET %s: %d leaks A's data or fails: %s", p, res.Status, res.Body)
		}
	}
	if diff := cmp.Diff(before, snapshot()); diff != "" {
		t.Errorf("A's data changed (-before +after):\n%s", diff)
	}
}

// userRows is a user's chats and messages as stored (every column that matters), to
// show that nothing of theirs changed.
func (s *stack) userRows(t *testing.T, userID string) string {
	t.Helper()
	var out []string
	for _, q := range []string{
		"SELECT CONCAT_WS('|', id, title, model, updated_at) FROM chats WHERE user_id = ? ORDER BY id",
		"SELECT CONCAT_WS('|', m.id, m.role, m.status, m.content) FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.user_id = ? ORDER BY m.id",
	} {
		rows, err := s.db.Admin.Query(q, userID)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		for rows.Next() {
			var v string
			_ = rows.Scan(&v)
			out = append(out, v)
		}
		rows.Close()
	}
	return strings.Join(out, "\n")
}
