package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/services/auth"
)

// env is one running auth service with its own database and NATS server.
type env struct {
	t   *testing.T
	db  *testdb.Database
	ns  *server.Server
	nc  *nats.Conn
	cfg auth.Config
	// stop stops the instance newEnv started.
	stop func()
}

func testConfig(d *testdb.Database, ns *server.Server) auth.Config {
	return auth.Config{
		NATSURL:                ns.ClientURL(),
		DB:                     db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name, MaxOpen: 10},
		RequestTimeout:         5 * time.Second,
		AccessTokenTTL:         15 * time.Minute,
		SessionIdleTimeout:     time.Hour,
		SessionAbsoluteTimeout: 12 * time.Hour,
		RefreshReuseGrace:      10 * time.Second,
		// Small argon2 parameters keep the tests fast; the defaults are tested in password.
		Argon2MemoryKiB:  1024,
		Argon2Time:       1,
		Argon2Threads:    1,
		HashConcurrency:  4,
		HashQueue:        64,
		LoginIPPerMinute: 100000,
		LoginIPBurst:     100000,
		KeyMaxAge:        720 * time.Hour,
	}
}

// newEnv starts auth with a fresh database and NATS server; mutate adjusts the config.
func newEnv(t *testing.T, mutate func(*auth.Config)) *env {
	t.Helper()
	d := testdb.New(t)
	ns := testnats.New(t)
	e := &env{t: t, db: d, ns: ns, cfg: testConfig(d, ns)}
	if mutate != nil {
		mutate(&e.cfg)
	}
	nc := testnats.Connect(t, ns.ClientURL())
	e.nc = nc
	e.stop = e.start(e.cfg)
	return e
}

// start runs auth with cfg until the test ends (or the returned stop is called) and
// waits until it answers.
func (e *env) start(cfg auth.Config) (stop func()) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- auth.Run(ctx, cfg, auth.Deps{}) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("Run stopped early: %v", err)
		default:
		}
		if _, err := e.keys(); err == nil {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("auth did not answer within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReplicas waits until n auth instances answer micro's PING.
func (e *env) waitReplicas(n int) {
	e.t.Helper()
	subject, err := micro.ControlSubject(micro.PingVerb, events.AuthService, "")
	if err != nil {
		e.t.Fatalf("ping subject: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		inbox := nats.NewInbox()
		sub, err := e.nc.SubscribeSync(inbox)
		if err != nil {
			e.t.Fatalf("subscribe: %v", err)
		}
		if err := e.nc.PublishRequest(subject, inbox, nil); err != nil {
			e.t.Fatalf("ping: %v", err)
		}
		ids := map[string]bool{}
		for {
			msg, err := sub.NextMsg(300 * time.Millisecond)
			if err != nil {
				break
			}
			var p micro.Ping
			if json.Unmarshal(msg.Data, &p) == nil {
				ids[p.ID] = true
			}
		}
		_ = sub.Unsubscribe()
		if len(ids) >= n {
			return
		}
	}
	e.t.Fatalf("fewer than %d auth instances answer", n)
}

func request[Req, Rep any](e *env, subject string, req Req) (Rep, error) {
	return requestAs[Req, Rep](e, "", subject, req)
}

// requestAs is request with the user's access token forwarded, as the gateway does.
func requestAs[Req, Rep any](e *env, token, subject string, req Req) (Rep, error) {
	ctx, cancel := context.WithTimeout(events.WithUserToken(context.Background(), token), 10*time.Second)
	defer cancel()
	return events.Request[Req, Rep](ctx, e.nc, subject, req)
}

func (e *env) me(token, userID string) (events.User, error) {
	rep, err := requestAs[events.UserRequest, events.UserReply](e, token, events.SubjectAuthMe, events.UserRequest{UserID: userID})
	return rep.User, err
}

func (e *env) keys() (events.KeysReply, error) {
	return request[events.Empty, events.KeysReply](e, events.SubjectAuthKeys, events.Empty{})
}

func (e *env) signup(req events.SignupRequest) (events.User, error) {
	rep, err := request[events.SignupRequest, events.UserReply](e, events.SubjectAuthSignup, req)
	return rep.User, err
}

func (e *env) login(username, password, ip string) (events.Session, error) {
	return request[events.LoginRequest, events.Session](e, events.SubjectAuthLogin,
		events.LoginRequest{Username: username, Password: password, ClientIP: ip})
}

func (e *env) refresh(rt string) (events.Session, error) {
	return request[events.RefreshRequest, events.Session](e, events.SubjectAuthRefresh, events.RefreshRequest{RefreshToken: rt})
}

func (e *env) logout(token string, req events.LogoutRequest) error {
	_, err := requestAs[events.LogoutRequest, events.Empty](e, token, events.SubjectAuthLogout, req)
	return err
}

func (e *env) mustSignup(username string) (events.User, string) {
	e.t.Helper()
	pw := "unusual-pass-" + username + "-Xq7"
	u, err := e.signup(events.SignupRequest{
		Username: username, Email: username + "@example.com", Password: pw, Firstname: "Ada", Lastname: "Lovelace",
	})
	if err != nil {
		e.t.Fatalf("signup %s: %v", username, err)
	}
	return u, pw
}

func (e *env) mustLogin(username, password string) events.Session {
	e.t.Helper()
	s, err := e.login(username, password, "192.0.2.1")
	if err != nil {
		e.t.Fatalf("login %s: %v", username, err)
	}
	return s
}

func (e *env) verifier() *authtoken.Verifier {
	e.t.Helper()
	k, err := e.keys()
	if err != nil {
		e.t.Fatalf("keys: %v", err)
	}
	return authtoken.NewVerifier(k.Keys)
}

func (e *env) kvValue(key string) (string, bool) {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.BucketRevokedSessions)
	if err != nil {
		e.t.Fatalf("open revocation bucket: %v", err)
	}
	ent, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false
	}
	if err != nil {
		e.t.Fatalf("get %s: %v", key, err)
	}
	return string(ent.Value()), true
}

// wantCode checks that err is an *events.Error with code.
func wantCode(t *testing.T, err error, code string) *events.Error {
	t.Helper()
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *events.Error %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("error code = %q (%s), want %q", e.Code, e.Message, code)
	}
	return e
}

func TestSignupValidation(t *testing.T) {
	e := newEnv(t, nil)
	valid := events.SignupRequest{
		Username: "valid_user", Email: "valid@example.com", Password: "a long unusual passphrase",
		Firstname: "Grace", Lastname: "Hopper",
	}
	tests := []struct {
		name  string
		edit  func(*events.SignupRequest)
		field string // "" means the signup succeeds
	}{
		{"username too short", func(r *events.SignupRequest) { r.Username = "ab" }, "username"},
		{"username too long", func(r *events.SignupRequest) { r.Username = strings.Repeat("a", 33) }, "username"},
		{"username with space", func(r *events.SignupRequest) { r.Username = "bob smith" }, "username"},
		{"username with at", func(r *events.SignupRequest) { r.Username = "bob@home" }, "username"},
		{"username unicode", func(r *events.SignupRequest) { r.Username = "jürgen" }, "username"},
		{"email missing", func(r *events.SignupRequest) { r.Email = "" }, "email"},
		{"email no at", func(r *events.SignupRequest) { r.Email = "not-an-email" }, "email"},
		{"email display name", func(r *events.SignupRequest) { r.Email = "Bob <bob@example.com>" }, "email"},
		{"email two addresses", func(r *events.SignupRequest) { r.Email = "a@example.com, b@example.com" }, "email"},
		{"email no dot in domain", func(r *events.SignupRequest) { r.Email = "a@localhost" }, "email"},
		{"email too long", func(r *events.SignupRequest) {
			r.Email = strings.Repeat("a", 60) + "@" + strings.Repeat("b", 190) + ".com"
		}, "email"},
		{"password too short", func(r *events.SignupRequest) { r.Password = "elevenchars" }, "password"},
		{"password too long", func(r *events.SignupRequest) { r.Password = strings.Repeat("xy", 64) + "z" }, "password"},
		{"password common", func(r *events.SignupRequest) { r.Password = "1qaz2wsx3edc" }, "password"},
		{"password common any case", func(r *events.SignupRequest) { r.Password = "QWERTYUIOP123" }, "password"},
		{"password common plus digits", func(r *events.SignupRequest) { r.Password = "Password1234" }, "password"},
		{"password one char repeated", func(r *events.SignupRequest) { r.Password = strings.Repeat("z", 20) }, "password"},
		{"password is username", func(r *events.SignupRequest) { r.Username = "correcthorse42"; r.Password = "CorrectHorse42" }, "password"},
		{"password is email local part", func(r *events.SignupRequest) {
			r.Email = "staplebattery@example.com"
			r.Password = "staplebattery"
		}, "password"},
		{"firstname empty", func(r *events.SignupRequest) { r.Firstname = "" }, "firstname"},
		{"firstname blank", func(r *events.SignupRequest) { r.Firstname = "   " }, "firstname"},
		{"firstname too long", func(r *events.SignupRequest) { r.Firstname = strings.Repeat("é", 101) }, "firstname"},
		{"lastname empty", func(r *events.SignupRequest) { r.Lastname = "" }, "lastname"},
		{"lastname too long", func(r *events.SignupRequest) { r.Lastname = strings.Repeat("x", 101) }, "lastname"},
		{"valid", func(r *events.SignupRequest) {}, ""},
		{"valid edge lengths", func(r *events.SignupRequest) {
			r.Username, r.Email = "a.b", "edge@example.com"
			r.Password = strings.Repeat("ab1", 42) + "cd"
			r.Firstname, r.Lastname = strings.Repeat("é", 100), "L"
		}, ""},
		{"names are not unique", func(r *events.SignupRequest) { r.Username, r.Email = "other_user", "other@example.com" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := valid
			tt.edit(&req)
			u, err := e.signup(req)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("signup: %v", err)
				}
				want := events.User{ID: u.ID, Username: req.Username, Email: req.Email,
					Firstname: strings.TrimSpace(req.Firstname), Lastname: strings.TrimSpace(req.Lastname), CreatedAt: u.CreatedAt}
				if diff := cmp.Diff(want, u); diff != "" {
					t.Errorf("user (-want +got):\n%s", diff)
				}
				if u.ID == "" || u.CreatedAt.IsZero() {
					t.Errorf("user has no id or created_at: %+v", u)
				}
				return
			}
			ee := wantCode(t, err, events.CodeInvalidInput)
			if !strings.Contains(ee.Message, tt.field) {
				t.Errorf("message %q does not name field %q", ee.Message, tt.field)
			}
		})
	}
}

func TestSignupTrimsAndHashes(t *testing.T) {
	e := newEnv(t, nil)
	u, err := e.signup(events.SignupRequest{
		Username: "  trim.me ", Email: " trim@example.com ", Password: "a long unusual passphrase",
		Firstname: "  Ada ", Lastname: " Byron  ",
	})
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	got := []string{u.Username, u.Email, u.Firstname, u.Lastname}
	if diff := cmp.Diff([]string{"trim.me", "trim@example.com", "Ada", "Byron"}, got); diff != "" {
		t.Errorf("stored fields (-want +got):\n%s", diff)
	}
	var hash string
	if err := e.db.DB.QueryRow(`SELECT password_hash FROM users WHERE id = ?`, u.ID).Scan(&hash); err != nil {
		t.Fatalf("read hash: %v", err)
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" || parts[3] != "m=1024,t=1,p=1" ||
		len(parts[4]) != 22 || len(parts[5]) != 43 {
		t.Errorf("password hash %q is not an argon2id PHC string with a 16-byte salt and 32-byte key", hash)
	}
}

func TestSignupDuplicates(t *testing.T) {
	e := newEnv(t, nil)
	e.mustSignup("alice")
	tests := []struct {
		name     string
		username string
		email    string
		code     string
	}{
		{"same username", "alice", "alice2@example.com", events.CodeUsernameTaken},
		{"username other case", "ALICE", "alice3@example.com", events.CodeUsernameTaken},
		{"same email", "alice_two", "alice@example.com", events.CodeEmailTaken},
		{"email other case", "alice_three", "Alice@Example.COM", events.CodeEmailTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.signup(events.SignupRequest{Username: tt.username, Email: tt.email,
				Password: "a long unusual passphrase", Firstname: "A", Lastname: "B"})
			wantCode(t, err, tt.code)
		})
	}

	t.Run("concurrent signups with one username", func(t *testing.T) {
		const n = 6
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = e.signup(events.SignupRequest{Username: "racer", Email: fmt.Sprintf("racer%d@example.com", i),
					Password: "a long unusual passphrase", Firstname: "A", Lastname: "B"})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			wantCode(t, err, events.CodeUsernameTaken)
		}
		if ok != 1 {
			t.Errorf("%d signups succeeded, want 1", ok)
		}
	})
}

func TestLogin(t *testing.T) {
	e := newEnv(t, nil)
	u, pw := e.mustSignup("bob")
	v := e.verifier()
	for _, login := range []string{"bob", "BOB", "bob@example.com", "Bob@Example.com"} {
		t.Run("by "+login, func(t *testing.T) {
			s, err := e.login(login, pw, "192.0.2.10")
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if diff := cmp.Diff(u, s.User); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
			c, err := v.Verify(s.AccessToken)
			if err != nil {
				t.Fatalf("verify access token: %v", err)
			}
			if c.Subject != u.ID || c.SessionID != s.SessionID || s.SessionID == "" || c.ID == "" {
				t.Errorf("claims sub=%q sid=%q jti=%q, want sub=%q sid=%q", c.Subject, c.SessionID, c.ID, u.ID, s.SessionID)
			}
			if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != 15*time.Minute {
				t.Errorf("token lifetime %s, want 15m", got)
			}
			if !s.ExpiresAt.Equal(c.ExpiresAt.Time) && s.ExpiresAt.Sub(c.ExpiresAt.Time).Abs() > time.Second {
				t.Errorf("expires_at %s, token exp %s", s.ExpiresAt, c.ExpiresAt)
			}
			if len(s.RefreshToken) != 43 || s.RefreshExpiresAt.Before(time.Now().Add(59*time.Minute)) {
				t.Errorf("refresh token %d chars expiring %s, want 43 chars and about an hour", len(s.RefreshToken), s.RefreshExpiresAt)
			}
		})
	}

	wrong := wantCode(t, func() error { _, err := e.login("bob", pw+"x", "192.0.2.11"); return err }(), events.CodeInvalidCredentials)
	unknown := wantCode(t, func() error { _, err := e.login("nobody", pw, "192.0.2.11"); return err }(), events.CodeInvalidCredentials)
	unknownEmail := wantCode(t, func() error { _, err := e.login("nobody@example.com", pw, "192.0.2.11"); return err }(), events.CodeInvalidCredentials)
	if diff := cmp.Diff(wrong, unknown); diff != "" {
		t.Errorf("unknown user and wrong password differ (-wrong +unknown):\n%s", diff)
	}
	if diff := cmp.Diff(wrong, unknownEmail); diff != "" {
		t.Errorf("unknown email and wrong password differ (-wrong +unknown):\n%s", diff)
	}
	for _, in := range [][2]string{{"", pw}, {"bob", ""}} {
		_, err := e.login(in[0], in[1], "192.0.2.11")
		wantCode(t, err, events.CodeInvalidCredentials)
	}
}

// TestNoPasswordHashInReplies reads raw replies of every endpoint.
func TestNoPasswordHashInReplies(t *testing.T) {
	e := newEnv(t, nil)
	raw := func(subject string, body string, token ...string) string {
		t.Helper()
		msg := nats.NewMsg(subject)
		msg.Data = []byte(body)
		if len(token) > 0 {
			msg.Header.Set(events.HeaderUserToken, token[0])
		}
		msg, err := e.nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatalf("request %s: %v", subject, err)
		}
		return string(msg.Data)
	}
	signup := raw(events.SubjectAuthSignup, `{"username":"carol","email":"carol@example.com","password":"a long unusual passphrase","firstname":"C","lastname":"D"}`)
	dup := raw(events.SubjectAuthSignup, `{"username":"carol","email":"carol@example.com","password":"a long unusual passphrase","firstname":"C","lastname":"D"}`)
	login := raw(events.SubjectAuthLogin, `{"username":"carol","password":"a long unusual passphrase"}`)
	var u events.UserReply
	_ = jsonUnmarshal(signup, &u)
	var s events.Session
	_ = jsonUnmarshal(login, &s)
	refresh := raw(events.SubjectAuthRefresh, `{"refresh_token":"`+s.RefreshToken+`"}`)
	me := raw(events.SubjectAuthMe, `{"user_id":"`+u.User.ID+`"}`, s.AccessToken)
	for name, body := range map[string]string{"signup": signup, "duplicate": dup, "login": login, "refresh": refresh, "me": me} {
		if strings.Contains(body, "argon2") || strings.Contains(body, "password") || strings.Contains(body, "passphrase") {
			t.Errorf("%s reply carries password material: %s", name, body)
		}
	}
	if u.User.ID == "" || s.AccessToken == "" || !strings.Contains(me, `"carol"`) {
		t.Errorf("unexpected replies: signup %s login %s me %s", signup, login, me)
	}
}

// TestMe: the user of the forwarded access token, and only that user: no token, a
// token of another user, or an unknown id is unauthenticated.
func TestMe(t *testing.T) {
	e := newEnv(t, nil)
	u, pw := e.mustSignup("dora")
	other, otherPW := e.mustSignup("dmitri")
	tok := e.mustLogin("dora", pw).AccessToken
	for _, userID := range []string{u.ID, ""} { // an empty payload user is the token's
		got, err := e.me(tok, userID)
		if err != nil {
			t.Fatalf("me (payload user %q): %v", userID, err)
		}
		if diff := cmp.Diff(u, got); diff != "" {
			t.Errorf("user (-want +got):\n%s", diff)
		}
	}
	for name, c := range map[string]struct{ token, userID string }{
		"no token":             {"", u.ID},
		"garbage token":        {"not.a.token", u.ID},
		"another user's token": {e.mustLogin("dmitri", otherPW).AccessToken, u.ID},
		"another user's id":    {tok, other.ID},
		"an unknown id":        {tok, "0190aaaa-0000-7000-8000-000000000000"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.me(c.token, c.userID)
			wantCode(t, err, events.CodeUnauthenticated)
		})
	}
	// A logged-out session's token is refused by auth itself (not only by the gateway
	// in front of it), while the user's other session still works.
	second := e.mustLogin("dora", pw).AccessToken
	if err := e.logout(tok, events.LogoutRequest{UserID: u.ID}); err != nil {
		t.Fatalf("logout: %v", err)
	}
	_, err := e.me(tok, u.ID)
	wantCode(t, err, events.CodeUnauthenticated)
	if _, err := e.me(second, u.ID); err != nil {
		t.Errorf("me with the other session after the logout: %v", err)
	}
}

func TestLoginThrottlePerAccount(t *testing.T) {
	e := newEnv(t, nil)
	_, pw := e.mustSignup("erin")
	for _, login := range []string{"erin", "ghost"} {
		t.Run(login, func(t *testing.T) {
			const attacker = "198.51.100.7"
			for range 5 {
				_, err := e.login(login, "wrong password number", attacker)
				wantCode(t, err, events.CodeInvalidCredentials)
			}
			// Right after the fifth failure the account waits, from that address (1 s,
			// then doubling).
			_, err := e.login(login, "wrong password again", attacker)
			throttled := wantCode(t, err, events.CodeTooManyAttempts)
			if throttled.RetryAfter < 1 || throttled.RetryAfter > 16 {
				t.Errorf("retry_after = %d, want 1..16", throttled.RetryAfter)
			}
			if login != "erin" {
				return
			}
			// The right password is refused too from there while blocked, without a hash...
			if _, err := e.login(login, pw, attacker); err != nil {
				wantCode(t, err, events.CodeTooManyAttempts)
			} else {
				t.Fatalf("login succeeded while throttled")
			}
			// ...but the owner elsewhere is not locked out by that attacker...
			if _, err := e.login(login, pw, "198.51.100.201"); err != nil {
				t.Fatalf("owner from another address: %v", err)
			}
			// ...and from the attacker's address it works once the delay is over;
			// success clears the count.
			time.Sleep(time.Duration(throttled.RetryAfter)*time.Second + 100*time.Millisecond)
			if _, err := e.login(login, pw, attacker); err != nil {
				t.Fatalf("login after the delay: %v", err)
			}
			for range 4 {
				_, err := e.login(login, "wrong password number", attacker)
				wantCode(t, err, events.CodeInvalidCredentials)
			}
		})
	}
}

func TestLoginThrottlePerIP(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.LoginIPPerMinute, c.LoginIPBurst = 3, 3 })
	_, pw := e.mustSignup("frank")
	for range 3 {
		_, err := e.login("frank", "wrong password number", "203.0.113.7")
		wantCode(t, err, events.CodeInvalidCredentials)
	}
	_, err := e.login("frank", pw, "203.0.113.7")
	ee := wantCode(t, err, events.CodeTooManyAttempts)
	if ee.RetryAfter < 1 || ee.RetryAfter > 20 {
		t.Errorf("retry_after = %d, want 1..20", ee.RetryAfter)
	}
	if _, err := e.login("frank", pw, "203.0.113.8"); err != nil {
		t.Errorf("login from another ip: %v", err)
	}
}

func TestRefresh(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.RefreshReuseGrace = 2 * time.Second })
	u, pw := e.mustSignup("gina")
	s0 := e.mustLogin("gina", pw)
	v := e.verifier()

	s1, err := e.refresh(s0.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if s1.RefreshToken == s0.RefreshToken || s1.SessionID != s0.SessionID || s1.AccessToken == s0.AccessToken {
		t.Errorf("refresh did not rotate: %+v", s1)
	}
	if diff := cmp.Diff(u, s1.User); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	if c, err := v.Verify(s1.AccessToken); err != nil || c.SessionID != s0.SessionID || c.Subject != u.ID {
		t.Errorf("refreshed access token: claims %+v, err %v", c, err)
	}

	// Within the grace window the old token answers the same successor (two tabs).
	again, err := e.refresh(s0.RefreshToken)
	if err != nil {
		t.Fatalf("refresh within grace: %v", err)
	}
	if again.RefreshToken != s1.RefreshToken {
		t.Errorf("grace refresh gave another successor")
	}
	// Concurrent refreshes of one token all get the same successor.
	const n = 4
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := e.refresh(s1.RefreshToken)
			if err != nil {
				t.Errorf("concurrent refresh: %v", err)
			}
			got[i] = s.RefreshToken
		})
	}
	wg.Wait()
	for _, rt := range got[1:] {
		if rt != got[0] || rt == "" {
			t.Fatalf("concurrent refreshes got different successors")
		}
	}
	s2 := got[0]

	_, err = e.refresh("not-a-token")
	wantCode(t, err, events.CodeUnauthenticated)
	_, err = e.refresh(base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	wantCode(t, err, events.CodeUnauthenticated)

	// After the grace window, a replay of a used token ends the whole session.
	time.Sleep(2500 * time.Millisecond)
	_, err = e.refresh(s0.RefreshToken)
	wantCode(t, err, events.CodeUnauthenticated)
	_, err = e.refresh(s2)
	wantCode(t, err, events.CodeUnauthenticated)
	if _, ok := e.kvValue(s0.SessionID); !ok {
		t.Errorf("reuse did not write the session to the revocation bucket")
	}
	// Other sessions are untouched.
	other := e.mustLogin("gina", pw)
	if _, err := e.refresh(other.RefreshToken); err != nil {
		t.Errorf("refresh of another session: %v", err)
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) {
		c.SessionIdleTimeout = 1500 * time.Millisecond
		c.SessionAbsoluteTimeout = 2500 * time.Millisecond
	})
	_, pw := e.mustSignup("hank")
	idle := e.mustLogin("hank", pw)
	active := e.mustLogin("hank", pw)
	if !active.RefreshExpiresAt.After(time.Now()) || active.RefreshExpiresAt.After(time.Now().Add(1600*time.Millisecond)) {
		t.Errorf("refresh_expires_at %s, want within the idle timeout", active.RefreshExpiresAt)
	}
	time.Sleep(1000 * time.Millisecond)
	next, err := e.refresh(active.RefreshToken)
	if err != nil {
		t.Fatalf("refresh within idle timeout: %v", err)
	}
	time.Sleep(700 * time.Millisecond)
	_, err = e.refresh(idle.RefreshToken)
	wantCode(t, err, events.CodeUnauthenticated)
	next, err = e.refresh(next.RefreshToken)
	if err != nil {
		t.Fatalf("refresh of the session in use: %v", err)
	}
	time.Sleep(1000 * time.Millisecond)
	_, err = e.refresh(next.RefreshToken)
	wantCode(t, err, events.CodeUnauthenticated) // past the absolute timeout
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	u, pw := e.mustSignup("ivan")
	other, otherPW := e.mustSignup("judy")
	s := e.mustLogin("ivan", pw)
	keep := e.mustLogin("ivan", pw)
	judy := e.mustLogin("judy", otherPW)

	// A session is ended only with its own access token: not with none, not with
	// another user's, not with another session's of the same user, whatever the payload says.
	for name, c := range map[string]struct {
		token string
		req   events.LogoutRequest
	}{
		"no token":                   {"", events.LogoutRequest{UserID: u.ID, SessionID: s.SessionID}},
		"another user's token":       {judy.AccessToken, events.LogoutRequest{UserID: other.ID, SessionID: s.SessionID}},
		"another user's token, ids":  {judy.AccessToken, events.LogoutRequest{UserID: u.ID, SessionID: s.SessionID}},
		"another session's token":    {keep.AccessToken, events.LogoutRequest{UserID: u.ID, SessionID: s.SessionID}},
		"another user's, everywhere": {judy.AccessToken, events.LogoutRequest{UserID: u.ID, Everywhere: true}},
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, e.logout(c.token, c.req), events.CodeUnauthenticated)
		})
	}
	for _, key := range []string{s.SessionID, keep.SessionID, "user_" + u.ID} {
		if _, ok := e.kvValue(key); ok {
			t.Fatalf("a refused logout revoked %s", key)
		}
	}

	if err := e.logout(s.AccessToken, events.LogoutRequest{UserID: u.ID, SessionID: s.SessionID}); err != nil {
		t.Fatalf("logout: %v", err)
	}
	val, ok := e.kvValue(s.SessionID)
	if !ok {
		t.Fatalf("logout wrote no revocation key")
	}
	if at, err := time.Parse(time.RFC3339, val); err != nil || time.Since(at) > time.Minute {
		t.Errorf("revocation value %q: %v", val, err)
	}
	_, err := e.refresh(s.RefreshToken)
	wantCode(t, err, events.CodeUnauthenticated)
	if err := e.logout(s.AccessToken, events.LogoutRequest{UserID: u.ID, SessionID: s.SessionID}); err != nil {
		t.Errorf("second logout: %v", err)
	}
	if _, err := e.refresh(keep.RefreshToken); err != nil {
		t.Errorf("other session stopped working: %v", err)
	}
}

func TestLogoutEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	u, pw := e.mustSignup("kate")
	s1 := e.mustLogin("kate", pw)
	s2 := e.mustLogin("kate@example.com", pw)
	before := time.Now().Add(-time.Second)
	if err := e.logout(s1.AccessToken, events.LogoutRequest{UserID: u.ID, SessionID: s1.SessionID, Everywhere: true}); err != nil {
		t.Fatalf("logout everywhere: %v", err)
	}
	val, ok := e.kvValue("user_" + u.ID)
	if !ok {
		t.Fatalf("no user_ revocation key")
	}
	at, err := time.Parse(time.RFC3339Nano, val)
	if err != nil || at.Before(before) {
		t.Errorf("revocation value %q (%v), want a time after %s", val, err, before)
	}
	for _, s := range []events.Session{s1, s2} {
		_, err := e.refresh(s.RefreshToken)
		wantCode(t, err, events.CodeUnauthenticated)
	}
	if _, err := e.refresh(e.mustLogin("kate", pw).RefreshToken); err != nil {
		t.Errorf("a new session after logout everywhere: %v", err)
	}
}

// signingKey reads the current private key from the database, to forge tokens with
// the genuine key but wrong claims or headers.
func (e *env) signingKey() (string, ed25519.PrivateKey) {
	e.t.Helper()
	var kid string
	var priv []byte
	if err := e.db.DB.QueryRow(`SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL
		ORDER BY created_at DESC LIMIT 1`).Scan(&kid, &priv); err != nil {
		e.t.Fatalf("read signing key: %v", err)
	}
	return kid, ed25519.PrivateKey(priv)
}

func TestKeysAndTokenVerification(t *testing.T) {
	e := newEnv(t, nil)
	u, pw := e.mustSignup("liam")
	s := e.mustLogin("liam", pw)
	keys, err := e.keys()
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	if len(keys.Keys) != 1 || keys.Keys[0].Alg != events.TokenAlg || len(keys.Keys[0].Key) != ed25519.PublicKeySize {
		t.Fatalf("keys = %+v, want one Ed25519 key", keys)
	}
	v := authtoken.NewVerifier(keys.Keys)
	kid, priv := e.signingKey()
	if !v.HasKey(kid) || keys.Keys[0].KID != kid {
		t.Fatalf("verifier lacks the signing kid %s", kid)
	}
	if c, err := v.Verify(s.AccessToken); err != nil || c.Subject != u.ID {
		t.Fatalf("verify: %+v, %v", c, err)
	}
	if v.UnknownKey(s.AccessToken) {
		t.Errorf("UnknownKey true for a known kid")
	}
	control, cases := forgedTokens(t, s.AccessToken, kid, priv, u.ID, s.SessionID)
	if _, err := v.Verify(control); err != nil {
		t.Fatalf("a test-signed token with good claims is refused: %v", err)
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := v.Verify(tok)
			if !errors.Is(err, authtoken.ErrInvalidToken) || c != nil {
				t.Errorf("Verify = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	unknown := sign(t, "unknown-kid", otherPriv, map[string]any{"typ": events.TokenType}, goodClaims(u.ID, s.SessionID))
	if !v.UnknownKey(unknown) {
		t.Errorf("UnknownKey false for an unknown kid")
	}
}

func TestRestartKeepsKey(t *testing.T) {
	e := newEnv(t, nil)
	_, pw := e.mustSignup("mona")
	s := e.mustLogin("mona", pw)
	kid, _ := e.signingKey()
	e.stop()
	stop := e.start(e.cfg)
	keys, err := e.keys()
	if err != nil || len(keys.Keys) != 1 || keys.Keys[0].KID != kid {
		t.Fatalf("keys after a restart = %+v, %v; want only %s", keys, err, kid)
	}
	if _, err := authtoken.NewVerifier(keys.Keys).Verify(s.AccessToken); err != nil {
		t.Errorf("token from before the restart: %v", err)
	}
	if _, err := e.refresh(s.RefreshToken); err != nil {
		t.Errorf("refresh token from before the restart: %v", err)
	}
	stop()

	// Rotation at start: the new key signs, the old one is still listed.
	rot := e.cfg
	rot.RotateKey = true
	e.start(rot)
	newKid, _ := e.signingKey()
	if newKid == kid {
		t.Fatalf("AUTH_ROTATE_KEY did not rotate")
	}
	keys, err = e.keys()
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	var kids []string
	for _, k := range keys.Keys {
		kids = append(kids, k.KID)
	}
	if diff := cmp.Diff([]string{newKid, kid}, kids); diff != "" {
		t.Errorf("kids after rotation (-want +got):\n%s", diff)
	}
	v := authtoken.NewVerifier(keys.Keys)
	if _, err := v.Verify(s.AccessToken); err != nil {
		t.Errorf("old token after rotation: %v", err)
	}
}

func TestConcurrentStartsConvergeOnOneKey(t *testing.T) {
	d := testdb.New(t)
	ns := testnats.New(t)
	nc := testnats.Connect(t, ns.ClientURL())
	e := &env{t: t, db: d, ns: ns, nc: nc, cfg: testConfig(d, ns)}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { e.start(e.cfg) })
	}
	wg.Wait()
	e.waitReplicas(3)
	var n int
	if err := d.DB.QueryRow(`SELECT COUNT(*) FROM signing_keys`).Scan(&n); err != nil {
		t.Fatalf("count keys: %v", err)
	}
	if n != 1 {
		t.Errorf("%d signing keys after concurrent starts, want 1", n)
	}
}

func TestRehashOnLoginWhenParamsRise(t *testing.T) {
	e := newEnv(t, nil)
	u, pw := e.mustSignup("nora")
	stronger := e.cfg
	stronger.Argon2MemoryKiB, stronger.Argon2Time = 2048, 2
	e.stop()
	e.start(stronger)
	hash := func() string {
		var h string
		if err := e.db.DB.QueryRow(`SELECT password_hash FROM users WHERE id = ?`, u.ID).Scan(&h); err != nil {
			t.Fatalf("read hash: %v", err)
		}
		return h
	}
	if h := hash(); !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q before the login", h)
	}
	e.mustLogin("nora", pw)
	if h := hash(); !strings.HasPrefix(h, "$argon2id$v=19$m=2048,t=2,p=1$") {
		t.Errorf("hash %q was not upgraded", h)
	}
	e.mustLogin("nora", pw)
}
