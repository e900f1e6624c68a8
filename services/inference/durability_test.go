package inference_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/devstack/tcpproxy"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference"
)

// metric returns the value of a gauge or counter (summed over the series that carry
// every label of want), or a histogram's sample count.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestLastDeliveryStoresFailed(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{hf: true, cfg: func(c *inference.Config) { c.MaxDeliver = 2 }})
	user := newID()
	c := e.newChat(user)
	// Without the GENERATIONS stream no delivery can write the answer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.js.DeleteStream(ctx, events.StreamGenerations); err != nil {
		t.Fatalf("delete stream: %v", err)
	}
	sent := e.send(user, c.ID, "hello?")
	var m events.Message
	waitFor(t, 20*time.Second, "the answer to fail", func() bool {
		m = e.stored(user, sent.AssistantMessage.ID)
		return events.Terminal(m.Status)
	})
	if m.Status != events.StatusFailed || m.Error == nil || m.Error.Code != events.CodeGenerationAbandoned ||
		!strings.Contains(m.Error.Message, "unavailable 2 times") {
		t.Fatalf("stored = %+v (error %+v)", m, m.Error)
	}
	if n := len(e.answerRequests()); n != 0 {
		t.Errorf("provider called %d times, want 0", n)
	}
	if recs := e.logs.Records(map[string]string{"code": events.CodeGenerationAbandoned}); len(recs) == 0 {
		t.Errorf("no log line with code %s", events.CodeGenerationAbandoned)
	}
}

func TestCompletionWaitsForChat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, fakehf.Options{TokenDelay: 40 * time.Millisecond})
	user := newID()
	c := e.newChat(user)
	question := strings.Repeat("word ", 20)
	sent := e.send(user, c.ID, question)
	var once sync.Once
	restarted := make(chan struct{})
	evs := e.generation(sent.AssistantMessage.ID, func(events.GenerationEvent) {
		once.Do(func() {
			// chat goes away while the answer streams, so storing it fails; it comes back
			// after the worker has handed the event back.
			e.stopChat()
			go func() {
				defer close(restarted)
				waitFor(t, 10*time.Second, "the first provider call to end", func() bool {
					reqs := e.answerRequests()
					return len(reqs) == 1 && reqs[0].Finished
				})
				time.Sleep(3 * time.Second)
				e.startChat()
			}()
		})
	})
	<-restarted
	checkSeqs(t, evs)
	want := "You said: " + question + "(seen 1 messages)"
	last := evs[len(evs)-1]
	if last.Type != events.GenDone || last.Message.Status != events.StatusComplete || last.Message.Content != want {
		t.Fatalf("terminal event = %+v", last)
	}
	if got := text(evs); got != want {
		t.Errorf("client rebuilt %q, want %q", got, want)
	}
	if m := e.stored(user, sent.AssistantMessage.ID); m.Status != events.StatusComplete || m.Content != want {
		t.Errorf("stored = %+v", m)
	}
	if n := len(e.answerRequests()); n < 2 {
		t.Errorf("provider called %d times, want a second call after the hand-back", n)
	}
}

// newEnvProxiedWorker is an env with the fake provider (tokenDelay per token) and a
// 2 s ack wait whose first worker reaches NATS through a proxy the test can cut.
func newEnvProxiedWorker(t *testing.T, tokenDelay time.Duration) (*env, *tcpproxy.Proxy) {
	t.Helper()
	var p *tcpproxy.Proxy
	e := newEnvWith(t, envOptions{
		hf:   true,
		fake: fakehf.Options{TokenDelay: tokenDelay},
		cfg:  func(c *inference.Config) { c.AckWait = 2 * time.Second },
		firstWorkerURL: func(natsURL string) string {
			p = tcpproxy.New(t, strings.TrimPrefix(natsURL, "nats://"))
			return "nats://" + p.Addr()
		},
	})
	return e, p
}

func TestDeadWorkerIsReplaced(t *testing.T) {
	t.Parallel()
	e, p := newEnvProxiedWorker(t, 40*time.Millisecond)
	user := newID()
	c := e.newChat(user)
	question := strings.Repeat("word ", 30)
	sent := e.send(user, c.ID, question)
	var once sync.Once
	evs := e.generation(sent.AssistantMessage.ID, func(events.GenerationEvent) {
		once.Do(func() {
			p.Cut() // the first worker is gone without a word
			e.startWorker()
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
	if !strings.Contains(strings.Join(types(evs), ","), events.GenReset) {
		t.Errorf("event types = %v, want a reset", types(evs))
	}
	if got := metric(t, e.workers[1].reg, "parley_inference_answers_total", map[string]string{"status": events.StatusComplete}); got != 1 {
		t.Errorf("the second worker finished %v answers, want 1", got)
	}
}

func TestScaleOutSharesWork(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, envOptions{
		hf:   true,
		fake: fakehf.Options{FirstTokenDelay: 50 * time.Millisecond, TokenDelay: 20 * time.Millisecond},
		cfg:  func(c *inference.Config) { c.Concurrency = 2 },
	})
	// The first worker is e.workers[0]; two more, one serving its metrics.
	e.startWorker()
	h := &workerHandle{reg: prometheus.NewRegistry()}
	h.stop = start(t, "inference", func(ctx context.Context) error {
		return inference.Run(ctx, e.cfg, inference.Deps{Logger: e.log, Registry: h.reg, MetricsListener: ln})
	})
	e.workers = append(e.workers, h)
	base := "http://" + ln.Addr().String()
	waitFor(t, 10*time.Second, "/readyz", func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	const n = 30
	user := newID()
	var ids []string
	for i := range n {
		c := e.newChat(user)
		content := fmt.Sprintf("question %d one two three four five six", i)
		if i == 0 {
			content += " [fakehf:401]"
		}
		ids = append(ids, e.send(user, c.ID, content).AssistantMessage.ID)
	}
	for i, id := range ids {
		evs := e.generation(id, nil)
		want := events.GenDone
		if i == 0 {
			want = events.GenError
		}
		if last := evs[len(evs)-1]; last.Type != want {
			t.Errorf("answer %d ended with %+v", i, last)
		}
	}
	total := 0.0
	for i, w := range e.workers {
		peak := metric(t, w.reg, "parley_inference_generations_in_flight_max", nil)
		done := metric(t, w.reg, "parley_inference_answers_total", nil)
		t.Logf("worker %d: %v answers, at most %v at once", i, done, peak)
		if peak > 2 || peak < 1 {
			t.Errorf("worker %d wrote up to %v answers at once, want 1..2", i, peak)
		}
		if done < n/3/2 {
			t.Errorf("worker %d wrote %v answers, want a fair share (at least %d)", i, done, n/3/2)
		}
		total += done
	}
	if total != n {
		t.Errorf("workers finished %v answers, want %d", total, n)
	}

	// The metrics endpoint of the third worker.
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	for _, want := range []string{
		"parley_inference_queue_depth", "parley_inference_generations_in_flight ",
		`parley_inference_time_to_first_token_seconds_count{model="mistralai/Mistral-7B-Instruct-v0.3"}`,
		`parley_inference_tokens_per_second_count{model="mistralai/Mistral-7B-Instruct-v0.3"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	authErrors := 0.0
	for _, w := range e.workers {
		authErrors += metric(t, w.reg, "parley_inference_provider_errors_total", map[string]string{"code": events.CodeProviderAuth})
	}
	if authErrors != 1 {
		t.Errorf("provider_auth errors counted %v, want 1", authErrors)
	}
	if res, err := http.Get(base + "/healthz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %v, %v", res, err)
	}
}
