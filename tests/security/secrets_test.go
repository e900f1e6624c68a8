package security_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
)

// testSecrets runs last: one more user with a password of its own goes through the
// product (including a provider error and a failed login), then every log line of
// every service (at debug level) and every HTTP answer of the whole run are searched
// for the secrets: passwords, access and refresh tokens, the HF token, the database
// and NATS passwords. Tokens may appear only where they are handed out (the login and
// refresh answers and their Set-Cookie headers); the others nowhere.
func testSecrets(t *testing.T, s *stack) {
	s.use(t)
	secretPassword := "Secret-Pw " + randomHex(10)
	name := "secret_" + randomHex(3)
	s.NewBrowser().Call("POST", "/api/auth/signup", map[string]string{
		"username": name, "email": name + "@example.com", "password": secretPassword, "firstname": "S", "lastname": "T",
	}, http.StatusCreated, nil)
	browser := s.NewBrowser()
	browser.Call("POST", "/api/auth/login", map[string]string{"username": name, "password": secretPassword}, http.StatusOK, nil)
	if res := s.NewBrowser().Raw("POST", "/api/auth/login", mustJSON(map[string]string{"username": name, "password": secretPassword + "x"}), nil); res.Status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", res.Status)
	}
	api := s.NewBrowser()
	var l loginReply
	api.Call("POST", "/api/auth/login", map[string]string{"username": name, "password": secretPassword}, http.StatusOK, &l)
	api.Browser, api.Token = false, l.AccessToken
	c := browser.CreateChat("secrets")
	sent := browser.Send(c.ID, "hello")
	browser.ReadAnswer(sent.AssistantMessage.ID, nil)
	// The provider refuses the token: the error must not carry it.
	step, ok := fakehf.Preset("401")
	if !ok {
		t.Fatal("no 401 preset")
	}
	s.hf.Enqueue("", step)
	failed := api.Send(c.ID, "make the provider fail")
	if _, evs := api.ReadAnswer(failed.AssistantMessage.ID, nil); final(t, evs).Status != events.StatusFailed {
		t.Errorf("provider 401: %+v", final(t, evs))
	}
	var rot loginReply
	s.NewBrowser().Call("POST", "/api/auth/refresh", map[string]string{"refresh_token": l.RefreshToken}, http.StatusOK, &rot)
	// Replay (reuse detection logs a security event) and log out.
	s.NewBrowser().Raw("POST", "/api/auth/refresh", mustJSON(map[string]string{"refresh_token": "x" + l.RefreshToken}), nil)
	browser.Call("POST", "/api/auth/logout", nil, http.StatusNoContent, nil)

	s.mu.Lock()
	responses := append([]recorded(nil), s.responses...)
	s.mu.Unlock()

	fixed := map[string]string{
		"test password":     password,
		"secret password":   secretPassword,
		"HF token":          s.hf.Token(),
		"auth DB password":  s.db.Auth.Password,
		"chat DB password":  s.db.Chat.Password,
		"gateway NATS pass": s.nu["gateway"],
		"auth NATS pass":    s.nu["auth"],
		"chat NATS pass":    s.nu["chat"],
		"inference NATS":    s.nu["inference"],
	}
	// Every token handed out during the whole run.
	tokens := map[string]bool{}
	for _, r := range responses {
		var rep loginReply
		if json.Unmarshal(r.Body, &rep) == nil {
			for _, tok := range []string{rep.AccessToken, rep.RefreshToken} {
				if tok != "" {
					tokens[tok] = true
				}
			}
		}
		for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
			if ck.Value != "" && strings.Contains(ck.Name, "parley_") {
				tokens[ck.Value] = true
			}
		}
	}
	if len(tokens) < 20 {
		t.Fatalf("only %d tokens collected", len(tokens))
	}
	// An access token is also searched for by its signature, a log could cut it.
	needles := map[string]string{}
	for what, v := range fixed {
		needles[v] = what
	}
	tokenNeedles := map[string]string{}
	for tok := range tokens {
		tokenNeedles[tok] = "a token"
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			tokenNeedles[parts[2]] = "an access token's signature"
		}
	}

	logs := s.Logs()
	if len(logs) < 10000 {
		t.Fatalf("only %d bytes of logs captured", len(logs))
	}
	for v, what := range needles {
		if strings.Contains(logs, v) {
			t.Errorf("the logs contain the %s", what)
		}
	}
	for v, what := range tokenNeedles {
		if strings.Contains(logs, v) {
			t.Errorf("the logs contain %s", what)
		}
	}
	issuing := func(path string) bool {
		return path == "/api/auth/login" || path == "/api/auth/refresh"
	}
	for _, r := range responses {
		var hdr strings.Builder
		for k, vs := range r.Header {
			if k == "Set-Cookie" {
				continue
			}
			hdr.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		text := string(r.Body) + "\n" + hdr.String()
		for v, what := range needles {
			if strings.Contains(text, v) {
				t.Errorf("%s %s answered with the %s", r.method, r.path, what)
			}
		}
		if issuing(r.path) {
			continue
		}
		for v, what := range tokenNeedles {
			if strings.Contains(text, v) {
				t.Errorf("%s %s answered with %s", r.method, r.path[:min(len(r.path), 80)], what)
			}
		}
	}
	t.Logf("searched %d bytes of logs and %d answers for %d secrets and %d tokens", len(logs), len(responses), len(fixed), len(tokens))
}
