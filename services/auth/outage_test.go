package auth_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// tcpProxy forwards connections from a local port to a target; cut closes the port and
// every open connection (the database looks down: connection refused), restore opens
// the port again.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen again: %v", err)
	}
	p.serve(ln)
}

// TestDatabaseOutage: while MySQL cannot be reached every RPC that needs it answers
// unavailable (a 503 with Retry-After at the gateway), not internal; auth works again
// once the database is back.
func TestDatabaseOutage(t *testing.T) {
	e := newEnv(t, nil)
	proxy := newTCPProxy(t, net.JoinHostPort(e.db.Host, strconv.Itoa(e.db.Port)))
	e.stop()
	cfg := e.cfg
	cfg.DB.Host, cfg.DB.Port = "127.0.0.1", proxy.port()
	e.start(cfg)

	u, pw := e.mustSignup("olga")
	sess := e.mustLogin("olga", pw)

	proxy.cut()
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

	proxy.restore()
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
