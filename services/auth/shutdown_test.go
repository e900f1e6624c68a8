package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testlog"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/auth"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestShutdownWhileBusy: cancelling Run's context while logins are in flight makes
// Run return nil within the bound; requests it had taken are answered (none fails
// because the database was closed under it), later ones find no responder, and the
// operations endpoint is gone. It also checks that the log lines of a request carry
// its request id, with the logger the command uses (events.ContextHandler).
func TestShutdownWhileBusy(t *testing.T) {
	d := testdb.New(t)
	ns := testnats.New(t)
	cfg := testConfig(d, ns)
	// Hashes slow enough, and one at a time, so that logins are still queued when the
	// stop comes.
	cfg.Argon2MemoryKiB, cfg.Argon2Time, cfg.HashConcurrency = 16*1024, 2, 1
	cfg.OpsAddr = freeAddr(t)
	logs := &testlog.Buffer{}
	log := events.WithRequestIDLogging(slog.New(slog.NewJSONHandler(logs, nil)))

	nc := testnats.Connect(t, ns.ClientURL())
	e := &env{t: t, db: d, ns: ns, nc: nc, cfg: cfg}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- auth.Run(ctx, cfg, auth.Deps{Logger: log}) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := e.keys(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("auth did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A request's log lines carry its id.
	const signupID = "req-signup-log-1"
	sctx, scancel := context.WithTimeout(events.WithRequestID(context.Background(), signupID), 10*time.Second)
	pw := "unusual-pass-shutdown-Xq7"
	rep, err := events.Request[events.SignupRequest, events.UserReply](sctx, nc, events.SubjectAuthSignup, events.SignupRequest{
		Username: "shutdown", Email: "shutdown@example.com", Password: pw, Firstname: "Ada", Lastname: "Lovelace",
	})
	scancel()
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	var found bool
	for _, l := range logs.Lines(t) {
		if l["user_id"] == rep.User.ID {
			found = true
			if l["request_id"] != signupID {
				t.Errorf("log line %q about the signup has request_id %v, want %q", l["msg"], l["request_id"], signupID)
			}
		}
	}
	if !found {
		t.Fatalf("no log line about the signup:\n%s", logs.String())
	}

	// The operations listener starts last: wait for it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		res, err := http.Get("http://" + cfg.OpsAddr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz before stop: %v %v", res, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Logins in flight, then the stop.
	const n = 12
	type result struct {
		i   int
		err error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			rctx, rcancel := context.WithTimeout(events.WithRequestID(context.Background(), fmt.Sprintf("req-login-%d", i)), 20*time.Second)
			defer rcancel()
			_, err := events.Request[events.LoginRequest, events.Session](rctx, nc, events.SubjectAuthLogin,
				events.LoginRequest{Username: "shutdown", Password: pw, ClientIP: "192.0.2.7"})
			results <- result{i, err}
		}()
	}
	// Wait until the first login is answered: the others are being hashed or queued.
	first := <-results
	if first.err != nil {
		t.Fatalf("first login: %v", first.err)
	}
	stopped := time.Now()
	cancel()
	const bound = 10 * time.Second
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(bound):
		t.Fatalf("Run did not return within %v", bound)
	}
	t.Logf("stopped in %v", time.Since(stopped).Round(time.Millisecond))

	ok, refused := 1, 0
	for range n - 1 {
		r := <-results
		var ee *events.Error
		switch {
		case r.err == nil:
			ok++
		case errors.As(r.err, &ee) && (ee.Code == events.CodeUnavailable || ee.Code == events.CodeTimeout || ee.Code == events.CodeTooManyAttempts):
			// Not taken (or refused while busy): the client may retry elsewhere.
			refused++
		default:
			// An internal error would mean the database went away under a request.
			t.Errorf("login %d: %v", r.i, r.err)
		}
	}
	t.Logf("%d logins answered, %d not taken", ok, refused)

	// No new work after the stop.
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if _, err := events.Request[events.Empty, events.KeysReply](rctx, nc, events.SubjectAuthKeys, events.Empty{}); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("keys after stop: %v, want unavailable", err)
	}
	if res, err := http.Get("http://" + cfg.OpsAddr + "/healthz"); err == nil {
		res.Body.Close()
		t.Error("operations endpoint still serving after stop")
	}
	for _, l := range logs.Lines(t) {
		if l["level"] == "ERROR" {
			t.Errorf("error logged around the stop: %v", l)
		}
	}
}
