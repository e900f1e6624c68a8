package auth_test

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/tcpproxy"
	"github.com/parley-chat/parley/libs/events"
)

// TestDatabaseOutage: while MySQL cannot be reached every RPC that needs it answers
// unavailable (a 503 with Retry-After at the gateway), not internal; auth works again
// once the database is back.
func TestDatabaseOutage(t *testing.T) {
	e := newEnv(t, nil)
	proxy := tcpproxy.New(t, net.JoinHostPort(e.db.Host, strconv.Itoa(e.db.Port)))
	e.stop()
	cfg := e.cfg
	cfg.DB.Host, cfg.DB.Port = "127.0.0.1", proxy.Port()
	e.start(cfg)

	u, pw := e.mustSignup("olga")
	sess := e.mustLogin("olga", pw)

	proxy.Cut()
	calls := []struct {
		name string
		call func() error
	}{
		{"login", func() error { _, err := e.login("olga", pw, "192.0.2.1"); return err }},
		{"me", func() error {
			_, err := e.me(sess.AccessToken, u.ID)
			return err
		}},
		{"refresh", func() error { _, err := e.refresh(sess.RefreshToken); return err }},
		{"signup", func() error {
			_, err := e.signup(events.SignupRequest{
				Username: "pavel", Email: "pavel@example.com", Password: "unusual-pass-pavel-Xq7", Firstname: "P", Lastname: "V",
			})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			got := wantCode(t, err, events.CodeUnavailable)
			if got.RetryAfter <= 0 {
				t.Errorf("retry_after = %d, want > 0", got.RetryAfter)
			}
		})
	}

	proxy.Restore()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.me(sess.AccessToken, u.ID)
		if err == nil {
			break
		}
		var ee *events.Error
		if !errors.As(err, &ee) || ee.Code != events.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("me after the outage: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.mustLogin("olga", pw)
}
