// Package drills_test breaks the running product on purpose and checks that it heals
// without restarting anything: the NATS server restarted under the services, the MySQL
// server restarted under them, an inference worker dying mid-answer, every service
// restarted at once, and a burst of answers spread over bounded workers.
package drills_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/devstack/tcpproxy"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// requestDeadline is the longest any API call may take during an outage: the
// gateway's own budget for a chat call plus slack.
const requestDeadline = 6 * time.Second

// expectUnavailable checks that a call answers 503 unavailable with Retry-After,
// promptly, and without internals in the body.
func expectUnavailable(t *testing.T, what string, call func() (e2e.Response, error)) {
	t.Helper()
	start := time.Now()
	res, err := call()
	took := time.Since(start)
	if err != nil {
		t.Errorf("%s: %v after %v", what, err, took)
		return
	}
	if res.Status != http.StatusServiceUnavailable || res.Code() != events.CodeUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("%s: %d %s (Retry-After %q) after %v, want 503 unavailable with Retry-After", what, res.Status, res.Body,
			res.Header.Get("Retry-After"), took)
	}
	if took > requestDeadline {
		t.Errorf("%s took %v", what, took)
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestNATSRestart stops the NATS server under the running services and starts a new
// one on the same port and store.
func TestNATSRestart(t *testing.T) {
	s := e2e.New(t, e2e.Options{
		KeepAlive: 200 * time.Millisecond,
		HFOptions: fakehf.Options{TokenDelay: 30 * time.Millisecond},
		// An AckWait well over the outage (a shorter one would have JetStream hand the
		// answers in flight to a second attempt when NATS is back), short enough that an
		// attempt lost in the outage is redelivered soon.
		Inference: func(_ int, cfg *inference.Config) {
			cfg.Heartbeat = 300 * time.Millisecond
			cfg.AckWait = 10 * time.Second
		},
	})
	u := s.User("nats_amy")
	c := u.CreateChat("before the outage")
	first := u.Send(c.ID, "hello before the outage")
	if a := e2e.Collect(t, u.Stream(first.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Fatalf("first answer: %+v", a.Final)
	}

	// An answer in flight and a stream open when NATS goes away.
	s.HF.Enqueue("", fakehf.Step{Reply: strings.TrimSpace(strings.Repeat("slow words ", 40))})
	inflight := u.Send(c.ID, "answer slowly across the outage")
	es := u.Open("/api/messages/" + inflight.AssistantMessage.ID + "/stream")
	before := es.Until(10*time.Second, func(e e2e.Event) bool { return e.Event == events.GenDelta })

	// A burst of sends racing the shutdown: whatever was accepted must be answered.
	var mu sync.Mutex
	var accepted []events.SendMessageReply
	var wg sync.WaitGroup
	stopBurst := make(chan struct{})
	for i := range 4 {
		bc := u.CreateChat(fmt.Sprintf("burst %d", i))
		wg.Go(func() {
			for {
				select {
				case <-stopBurst:
					return
				default:
				}
				var rep events.SendMessageReply
				res, err := u.Do("POST", "/api/chats/"+bc.ID+"/messages", map[string]string{"content": "racing the outage"})
				if err == nil && res.Status == http.StatusAccepted && jsonOK(res.Body, &rep) {
					mu.Lock()
					accepted = append(accepted, rep)
					mu.Unlock()
					// One at a time per chat: wait for this one before the next.
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	s.NATS.Stop()
	down := time.Now()
	close(stopBurst)
	wg.Wait()

	// During the outage: prompt 503s with Retry-After, /readyz 503, /healthz 200.
	expectUnavailable(t, "list chats", func() (e2e.Response, error) { return u.Do("GET", "/api/chats", nil) })
	expectUnavailable(t, "send", func() (e2e.Response, error) {
		return u.Do("POST", "/api/chats/"+c.ID+"/messages", map[string]string{"content": "during the outage"})
	})
	expectUnavailable(t, "stream", func() (e2e.Response, error) {
		return u.Do("GET", "/api/messages/"+first.AssistantMessage.ID+"/stream", nil)
	})
	expectUnavailable(t, "login", func() (e2e.Response, error) {
		return u.Do("POST", "/api/auth/login", map[string]string{"username": "nats_amy", "password": e2e.Password}, "X-Parley-CSRF", "1")
	})
	if got := status(t, s.URLs[0]+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d", got)
	}
	if got := status(t, s.URLs[0]+"/healthz"); got != http.StatusOK {
		t.Errorf("/healthz during the outage: %d", got)
	}
	// The open stream ends by itself, so its client resumes with Last-Event-ID.
	if !es.Ended(10 * time.Second) {
		t.Errorf("the open stream did not end during the outage")
	}
	t.Logf("outage lasted %v", time.Since(down).Round(time.Millisecond))

	s.NATS.Start()
	back := time.Now()
	e2e.Eventually(t, 15*time.Second, "ready again", func() error {
		res, err := http.Get(s.URLs[0] + "/readyz?deps=1")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", res.StatusCode)
		}
		return nil
	})
	t.Logf("ready %v after NATS came back", time.Since(back).Round(time.Millisecond))

	// Everything works again, without restarting any service.
	after := u.Send(u.CreateChat("after the outage").ID, "hello after the outage")
	if a := e2e.Collect(t, u.Stream(after.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Fatalf("answer after the outage: %+v", a.Final)
	}
	// The answer in flight during the outage finishes; resuming the stream from where it
	// broke gives the rest without gaps or repeats.
	last := before[len(before)-1].ID
	rest := u.Stream(inflight.AssistantMessage.ID, "Last-Event-ID", last)
	a := e2e.Collect(t, append(before, rest...))
	stored := u.Message(c.ID, inflight.AssistantMessage.ID)
	if a.Final.Status != events.StatusComplete || stored.Status != events.StatusComplete || a.Text != stored.Content {
		t.Errorf("answer across the outage: streamed %q (%s), stored %q (%s); events %v", a.Text, a.Final.Status,
			stored.Content, stored.Status, e2e.Names(rest))
	}
	// Every send accepted around the shutdown gets its answer.
	t.Logf("%d sends accepted around the shutdown", len(accepted))
	for _, rep := range accepted {
		if a := e2e.Collect(t, u.Stream(rep.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
			t.Errorf("accepted send %s: %+v", rep.UserMessage.ID, a.Final)
		}
	}
}

// TestWorkerDies makes the worker holding an answer vanish (its NATS connection cut,
// as when its process is killed): JetStream redelivers the event to the other worker
// after AckWait, and the client sees reset and then the full answer.
func TestWorkerDies(t *testing.T) {
	var proxies []*tcpproxy.Proxy
	var fakes []*e2e.Fake
	for range 2 {
		hf := e2e.NewFake(fakehf.Options{TokenDelay: 50 * time.Millisecond})
		t.Cleanup(hf.Close)
		fakes = append(fakes, hf)
	}
	s := e2e.New(t, e2e.Options{
		Workers: 2,
		WorkerHF: func(i int) *e2e.Fake {
			return fakes[i]
		},
		WorkerNATSURL: func(_ int, natsURL string) string {
			// The worker reaches NATS through a proxy; cutting it is, to the NATS
			// server, the worker's process dying: no more acks or heartbeats.
			p := tcpproxy.New(t, strings.TrimPrefix(natsURL, "nats://"))
			proxies = append(proxies, p)
			return "nats://" + p.Addr()
		},
		// A short AckWait: the dead worker's event is redelivered within seconds.
		Inference: func(_ int, cfg *inference.Config) {
			cfg.Heartbeat = 300 * time.Millisecond
			cfg.AckWait = 2 * time.Second
		},
	})
	s.WaitWorkersPulling(s.JetStream(), 2)

	u := s.User("worker_ben")
	c := u.CreateChat("failover")
	reply := strings.TrimSpace(strings.Repeat("steady words ", 15))
	for _, hf := range fakes {
		hf.Enqueue("", fakehf.Step{Reply: reply})
	}
	sent := u.Send(c.ID, "survive a dead worker")
	es := u.Open("/api/messages/" + sent.AssistantMessage.ID + "/stream")
	got := es.Until(10*time.Second, func(e e2e.Event) bool { return e.Event == events.GenDelta && e.ID == "3" })

	holder := -1
	for i, hf := range fakes {
		if len(hf.Answers()) > 0 {
			holder = i
		}
	}
	if holder < 0 {
		t.Fatal("no worker asked its provider")
	}
	proxies[holder].Cut()
	killed := time.Now()
	t.Logf("worker %d holds the answer; cut it off", holder)

	got = append(got, es.Rest(30*time.Second)...)
	a := e2e.Collect(t, got)
	t.Logf("answer finished %v after the worker died; events %v", time.Since(killed).Round(time.Millisecond), e2e.Names(got))
	names := e2e.Names(got)
	reset := -1
	for i, n := range names {
		if n == events.GenReset {
			reset = i
		}
	}
	if reset < 3 {
		t.Errorf("no reset after the first attempt's deltas: %v", names)
	}
	stored := u.Message(c.ID, sent.AssistantMessage.ID)
	if a.Final.Status != events.StatusComplete || a.Text != reply || stored.Content != reply {
		t.Errorf("after fail-over: streamed %q (%s), stored %q", a.Text, a.Final.Status, stored.Content)
	}
	if n := len(fakes[1-holder].Answers()); n != 1 {
		t.Errorf("the surviving worker asked its provider %d times", n)
	}
	// The whole story replays the same on a fresh resume from the start.
	replay := u.Stream(sent.AssistantMessage.ID, "Last-Event-ID", "1")
	if r := e2e.Collect(t, append(got[:1:1], replay...)); r.Text != reply {
		t.Errorf("replayed text %q", r.Text)
	}
	// Stopping a worker that cannot reach NATS is still a clean stop.
	if err := s.Workers[holder].StopErr(); err != nil {
		t.Errorf("inference.Run of the cut-off worker returned %v on stop, want nil (a stop while NATS is unreachable is clean)", err)
	}
}

// TestRestartEverything stops every service at once while answers are pending or being
// written, then starts them again: every answer ends finished, none stays pending or
// streaming.
func TestRestartEverything(t *testing.T) {
	reply := strings.TrimSpace(strings.Repeat("patient words ", 20))
	s := e2e.New(t, e2e.Options{
		HFOptions: fakehf.Options{TokenDelay: 40 * time.Millisecond, Reply: func(fakehf.ChatRequest) string { return reply }},
		Inference: func(_ int, cfg *inference.Config) {
			cfg.Heartbeat = 300 * time.Millisecond
			cfg.AckWait = 3 * time.Second
			cfg.Concurrency = 2
		},
		Chat: func(cfg *chat.Config) { cfg.ReapInterval = time.Second },
	})
	u := s.User("restart_cat")
	var sent []events.SendMessageReply
	chats := map[string]string{}
	for i := range 4 {
		c := u.CreateChat(fmt.Sprintf("restart %d", i))
		rep := u.Send(c.ID, "keep going")
		sent = append(sent, rep)
		chats[rep.AssistantMessage.ID] = c.ID
	}
	// Two are being written (concurrency 2), two wait; stop everything mid-answer.
	es := u.Open("/api/messages/" + sent[0].AssistantMessage.ID + "/stream")
	es.Until(10*time.Second, func(e e2e.Event) bool { return e.Event == events.GenDelta })
	es.Close()
	s.StopAll()
	s.StartAll()
	s.WaitReady(30 * time.Second)

	for _, rep := range sent {
		a := e2e.Collect(t, u.Stream(rep.AssistantMessage.ID))
		stored := u.Message(chats[rep.AssistantMessage.ID], rep.AssistantMessage.ID)
		if !events.Terminal(stored.Status) || a.Final.Status != stored.Status {
			t.Errorf("answer %s after the restart: stored %s, streamed %s", rep.AssistantMessage.ID, stored.Status, a.Final.Status)
		}
		if stored.Status == events.StatusComplete && (stored.Content != reply || a.Text != reply) {
			t.Errorf("answer %s: stored %q, streamed %q", rep.AssistantMessage.ID, stored.Content, a.Text)
		}
	}
	// The answers cut short were written again from the start.
	if reqs := s.HF.Answers(); len(reqs) <= len(sent) {
		for _, r := range reqs {
			t.Logf("provider call %s finished=%v cancelled=%v status=%d", r.Time.Format(time.StampMilli), r.Finished, r.Cancelled, r.Status)
		}
		t.Errorf("%d provider calls for %d answers: the restart interrupted nothing", len(reqs), len(sent))
	}
}

// TestBurst sends more answers at once than the workers may write together: each
// worker stays within its concurrency, the rest queue, every answer completes, and both
// workers take a share.
func TestBurst(t *testing.T) {
	const workers, concurrency, burst = 2, 2, 10
	var fakes []*e2e.Fake
	for range workers {
		hf := e2e.NewFake(fakehf.Options{FirstTokenDelay: 400 * time.Millisecond})
		t.Cleanup(hf.Close)
		fakes = append(fakes, hf)
	}
	s := e2e.New(t, e2e.Options{
		Workers:   workers,
		WorkerHF:  func(i int) *e2e.Fake { return fakes[i] },
		Inference: func(_ int, cfg *inference.Config) { cfg.Concurrency = concurrency },
	})
	// Watch how many provider calls each worker has open at once.
	ctx, stop := context.WithCancel(context.Background())
	peaks := make([]int, workers)
	var watch sync.WaitGroup
	watch.Go(func() {
		for ctx.Err() == nil {
			for i, hf := range fakes {
				open := 0
				for _, r := range hf.Answers() {
					if !r.Finished {
						open++
					}
				}
				peaks[i] = max(peaks[i], open)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	var sent []events.SendMessageReply
	var users []*e2e.Client
	for i := range burst {
		u := s.User(fmt.Sprintf("burst_%d", i))
		users = append(users, u)
		sent = append(sent, u.Send(u.CreateChat("burst").ID, fmt.Sprintf("question %d", i)))
	}
	var wg sync.WaitGroup
	results := make([]e2e.Answer, burst)
	for i := range burst {
		wg.Go(func() { results[i] = e2e.Collect(t, users[i].Stream(sent[i].AssistantMessage.ID)) })
	}
	wg.Wait()
	stop()
	watch.Wait()
	for i, a := range results {
		if a.Final.Status != events.StatusComplete || !strings.Contains(a.Text, fmt.Sprintf("question %d", i)) {
			t.Errorf("answer %d: %q (%s)", i, a.Text, a.Final.Status)
		}
	}
	for i, hf := range fakes {
		n := len(hf.Answers())
		t.Logf("worker %d: %d answers, at most %d at once", i, n, peaks[i])
		if peaks[i] > concurrency {
			t.Errorf("worker %d wrote %d answers at once, more than its concurrency %d", i, peaks[i], concurrency)
		}
		if n < burst/(2*workers) {
			t.Errorf("worker %d wrote only %d of %d answers", i, n, burst)
		}
	}
}

// TestNoWorkerLeft: with every inference worker gone for good, a pending answer does not
// stay pending: chat's reaper fails it with a readable error, and its stream says so.
func TestNoWorkerLeft(t *testing.T) {
	s := e2e.New(t, e2e.Options{
		Chat: func(cfg *chat.Config) {
			cfg.GenerationTimeout = 2 * time.Second
			cfg.ReapInterval = 300 * time.Millisecond
		},
	})
	u := s.User("orphan_eli")
	c := u.CreateChat("nobody answers")
	s.Workers[0].Stop()
	// The gateway stays in the load balancer (its own readiness), while the deep check
	// names the missing service.
	if code := status(t, s.URLs[0]+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with no worker = %d, want 200", code)
	}
	e2e.Eventually(t, 10*time.Second, "/readyz?deps=1 refusing with no worker", func() error {
		if code := status(t, s.URLs[0]+"/readyz?deps=1"); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz?deps=1 = %d, want 503", code)
		}
		return nil
	})
	sent := u.Send(c.ID, "is anyone there")
	a := e2e.Collect(t, u.Stream(sent.AssistantMessage.ID))
	stored := u.Message(c.ID, sent.AssistantMessage.ID)
	if stored.Status != events.StatusFailed || a.Final.Status != events.StatusFailed || a.ErrCode == "" {
		t.Fatalf("orphaned answer: stored %s, streamed %s (%q)", stored.Status, a.Final.Status, a.ErrCode)
	}
	if stored.Error == nil || stored.Error.Code != a.ErrCode || len(stored.Error.Message) < 10 {
		t.Errorf("error: stored %+v, streamed %q", stored.Error, a.ErrCode)
	}
	// The chat is free again once a worker is back.
	s.Workers[0].Start()
	next := u.Send(c.ID, "and now")
	if a := e2e.Collect(t, u.Stream(next.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Errorf("answer with a worker back: %+v", a.Final)
	}
}
