package inference_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference"
)

// pausableProxy is a TCP proxy to NATS that can be cut for a while and then come back
// on the same address, like a network partition between a worker and NATS.
type pausableProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newPausableProxy(t *testing.T, natsURL string) *pausableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &pausableProxy{t: t, addr: ln.Addr().String(), target: strings.TrimPrefix(natsURL, "nats://"), ln: ln}
	go p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *pausableProxy) url() string { return "nats://" + p.addr }

func (p *pausableProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
		go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
	}
}

// cut closes the listener and every connection.
func (p *pausableProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address.
func (p *pausableProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("listen again on %s: %v", p.addr, err)
		return
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

// A worker cut off from NATS for longer than the ack wait is presumed dead and another
// worker takes the answer over. When the first one comes back and finishes its own
// attempt, chat refuses its completion: the answer is the one clients saw streamed by
// the second attempt, and the first publishes no terminal event.
func TestStaleWorkerYieldsToTheNewAttempt(t *testing.T) {
	t.Parallel()
	var p *pausableProxy
	e := newEnvWith(t, envOptions{
		hf:   true,
		fake: fakehf.Options{TokenDelay: 130 * time.Millisecond},
		cfg:  func(c *inference.Config) { c.AckWait = 2 * time.Second },
		firstWorkerURL: func(natsURL string) string {
			p = newPausableProxy(t, natsURL)
			return p.url()
		},
	})
	user := newID()
	c := e.newChat(user)
	question := strings.Repeat("word ", 30)
	sent := e.send(user, c.ID, question)
	var once sync.Once
	evs := e.generation(sent.AssistantMessage.ID, func(events.GenerationEvent) {
		once.Do(func() {
			// The first worker streams; now it loses NATS for longer than the ack wait
			// while its provider call goes on.
			p.cut()
			e.startWorker()
			time.AfterFunc(3*time.Second, p.restore)
		})
	})
	checkSeqs(t, evs)
	want := "You said: " + question + "(seen 1 messages)"
	last := evs[len(evs)-1]
	if last.Type != events.GenDone || last.Message.Status != events.StatusComplete || last.Message.Content != want {
		t.Fatalf("terminal event = %+v", last)
	}
	if got := text(evs); got != want {
		t.Errorf("client rebuilt %q, want %q", got, want)
	}
	stale := e.workers[0].reg
	waitFor(t, 20*time.Second, "the first worker to give its attempt up", func() bool {
		return metric(t, stale, "parley_inference_answers_total", map[string]string{"status": "superseded"}) == 1
	})
	if got := metric(t, stale, "parley_inference_answers_total", map[string]string{"status": events.StatusComplete}); got != 0 {
		t.Errorf("the stale worker stored %v answers, want 0", got)
	}
	if got := metric(t, e.workers[1].reg, "parley_inference_answers_total", map[string]string{"status": events.StatusComplete}); got != 1 {
		t.Errorf("the second worker finished %v answers, want 1", got)
	}
	// Nothing follows the terminal event: the stale worker published none of its own.
	time.Sleep(500 * time.Millisecond)
	again := e.generation(sent.AssistantMessage.ID, nil)
	if len(again) != len(evs) {
		t.Errorf("%d events on the subject after the answer finished, want %d", len(again), len(evs))
	}
	if m := e.stored(user, sent.AssistantMessage.ID); m.Content != want || m.Status != events.StatusComplete {
		t.Errorf("stored %+v", m)
	}
}
