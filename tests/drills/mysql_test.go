package drills_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/mariadb"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

func jsonOK(b []byte, v any) bool { return json.Unmarshal(b, v) == nil }

// privateMariaDB starts a MariaDB server of this test's own (the shared test server
// must not be stopped under the other packages), with a login for the services.
func privateMariaDB(t *testing.T) (*mariadb.Server, db.Config) {
	t.Helper()
	s := testdb.NewServer(t)
	return s.Server, db.Config{Username: s.User, Password: s.Password, Host: "127.0.0.1", Port: s.Port, Name: s.Name, MaxOpen: 10}
}

// TestMySQLRestart stops the MySQL server under the running services and starts it
// again on the same data and port.
func TestMySQLRestart(t *testing.T) {
	srv, cfg := privateMariaDB(t)
	s := e2e.New(t, e2e.Options{DB: &cfg})
	u := s.User("mysql_dan")
	c := u.CreateChat("before")
	first := u.Send(c.ID, "hello before the outage")
	if a := e2e.Collect(t, u.Stream(first.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Fatalf("first answer: %+v", a.Final)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e2e.Eventually(t, 10*time.Second, "mysql down", func() error {
		if _, err := os.Stat(srv.Socket()); err == nil {
			return fmt.Errorf("socket still there")
		}
		return nil
	})
	// During the outage: prompt 503s, never a 500 or a hang.
	expectUnavailable(t, "list chats", func() (e2e.Response, error) { return u.Do("GET", "/api/chats", nil) })
	expectUnavailable(t, "get chat", func() (e2e.Response, error) { return u.Do("GET", "/api/chats/"+c.ID, nil) })
	expectUnavailable(t, "send", func() (e2e.Response, error) {
		return u.Do("POST", "/api/chats/"+c.ID+"/messages", map[string]string{"content": "during the outage"})
	})
	expectUnavailable(t, "me", func() (e2e.Response, error) { return u.Do("GET", "/api/auth/me", nil) })
	expectUnavailable(t, "login", func() (e2e.Response, error) {
		return u.Do("POST", "/api/auth/login", map[string]string{"username": "mysql_dan", "password": e2e.Password}, "X-Parley-CSRF", "1")
	})
	if got := status(t, s.URLs[0]+"/healthz"); got != http.StatusOK {
		t.Errorf("/healthz during the outage: %d", got)
	}

	if _, err := mariadb.Start(ctx, srv.Dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("start mariadb again: %v", err)
	}
	back := time.Now()
	e2e.Eventually(t, 10*time.Second, "chat works again", func() error {
		res, err := u.Do("GET", "/api/chats", nil)
		if err != nil || res.Status != http.StatusOK {
			return fmt.Errorf("list chats: %d %s %v", res.Status, res.Body, err)
		}
		return nil
	})
	e2e.Eventually(t, 10*time.Second, "auth works again", func() error {
		res, err := u.Do("GET", "/api/auth/me", nil)
		if err != nil || res.Status != http.StatusOK {
			return fmt.Errorf("me: %d %s %v", res.Status, res.Body, err)
		}
		return nil
	})
	t.Logf("working %v after MySQL came back", time.Since(back).Round(time.Millisecond))
	after := u.Send(c.ID, "hello after the outage")
	if a := e2e.Collect(t, u.Stream(after.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Fatalf("answer after the outage: %+v", a.Final)
	}
	u.Call("POST", "/api/auth/login", map[string]string{"username": "mysql_dan", "password": e2e.Password}, http.StatusOK, nil,
		"X-Parley-CSRF", "1")
}
