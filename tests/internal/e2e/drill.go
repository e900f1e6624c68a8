package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// Proxy is a TCP proxy in front of the NATS server for one service. Cut drops its
// connections and refuses new ones, which to the NATS server looks exactly like the
// service's process dying: no more acks, no more in-progress heartbeats.
type Proxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

// NewProxy listens on a local port and forwards to target (host:port).
func NewProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	go p.accept()
	return p
}

// URL is the proxy's NATS URL.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// Cut drops every connection and refuses new ones from now on.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// WaitWorkersPulling waits until `workers` workers pull from the inference durable
// consumer (each is set up and ready for events).
func (s *Stack) WaitWorkersPulling(js jetstream.JetStream, workers int) {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Eventually(s.T, 30*time.Second, "workers pulling", func() error {
		cons, err := js.Consumer(ctx, events.StreamChatEvents, events.ConsumerInference)
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting < workers {
			return fmt.Errorf("%d pull requests waiting, want %d", info.NumWaiting, workers)
		}
		return nil
	})
}

// GenerationConsumers counts the consumers on GENERATIONS (the gateway's stream
// readers; nothing else consumes it).
func GenerationConsumers(js jetstream.JetStream) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamGenerations)
	if err != nil {
		return 0, err
	}
	n := 0
	names := st.ConsumerNames(ctx)
	for range names.Name() {
		n++
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return 0, err
	}
	return n, nil
}
