package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/bench/internal/proc"
	"github.com/parley-chat/parley/bench/internal/stats"
)

const benchPassword = "bench: correct horse battery staple"

// errs counts errors by kind and keeps a few examples.
type errs struct {
	mu       sync.Mutex
	n        int
	kinds    map[string]int
	examples []string
}

func (e *errs) add(kind string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.kinds == nil {
		e.kinds = map[string]int{}
	}
	e.kinds[kind]++
	if len(e.examples) < 5 {
		e.examples = append(e.examples, kind+": "+err.Error())
	}
}

func (e *errs) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// newTransport is an HTTP transport for n simulated users (a stream and a request
// each at most), with no limit that the platform would not have.
func newTransport(n int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4*n + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// user is one simulated user.
type user struct {
	i      int
	name   string
	c      *apiClient
	chatID string
}

// forEach runs fn for n items with at most par at once.
func forEach(n, par int, fn func(i int)) {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// setup signs up, logs in and opens a new chat for every user.
func setup(ctx context.Context, st *stack, hc *http.Client, n int, e *errs) []*user {
	users := make([]*user, n)
	forEach(n, 64, func(i int) {
		u := &user{i: i, name: fmt.Sprintf("bench%05d", i), c: &apiClient{base: st.base, hc: hc}}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := u.c.signup(cctx, u.name, benchPassword); err != nil {
			e.add("signup", err)
			return
		}
		if err := u.c.login(cctx, u.name, benchPassword); err != nil {
			e.add("login", err)
			return
		}
		id, err := u.c.newChat(cctx)
		if err != nil {
			e.add("new chat", err)
			return
		}
		u.chatID = id
		users[i] = u
	})
	return users
}

// goStats are the gateway's Go runtime figures from its /metrics.
type goStats struct {
	HeapInuse, Goroutines float64
}

func scrapeGo(ctx context.Context, base string) goStats {
	var g goStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return g
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return g
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			g.HeapInuse = v
		case "go_goroutines":
			g.Goroutines = v
		}
	}
	return g
}

// idleResult is the memory of idle open streams in the gateway.
type idleResult struct {
	Streams                   int     `json:"streams"`
	RSSBefore, RSSAfter       uint64  `json:"-"`
	RSSPerStream              float64 `json:"rss_per_stream_bytes"`
	HeapPerStream             float64 `json:"heap_per_stream_bytes"`
	GoroutinesPerStream       float64 `json:"goroutines_per_stream"`
	NATSRSSPerStream          float64 `json:"nats_rss_per_stream_bytes"`
	GatewayRSSBeforeMiB       float64 `json:"gateway_rss_before_mib"`
	GatewayRSSAfterMiB        float64 `json:"gateway_rss_after_mib"`
	Errors                    int     `json:"errors"`
	before, after             goStats
	natsBefore, natsAfter     uint64
	settle                    time.Duration
	streamsOpenedWithinSecond float64
}

// idleStreams opens one stream per user on an answer the provider holds before its
// first token ([fakehf:stall:0]), measures the gateway's (and NATS's) memory, then
// cancels the answers and reads the streams to their end.
func idleStreams(ctx context.Context, st *stack, users []*user, settle time.Duration, e *errs, log *slog.Logger) idleResult {
	r := idleResult{Streams: len(users), settle: settle}
	time.Sleep(500 * time.Millisecond)
	r.RSSBefore, r.before, r.natsBefore = st.gateway.sample().RSS, scrapeGo(ctx, st.base), st.nats.sample().RSS
	ids := make([]string, len(users))
	var opened, finished sync.WaitGroup
	opened.Add(len(users))
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	forEach(len(users), 64, func(i int) {
		u := users[i]
		id, err := u.c.send(ctx, u.chatID, "[fakehf:stall:0] Hold this answer open, please.")
		if err != nil {
			e.add("idle send", err)
			opened.Done()
			return
		}
		ids[i] = id
		finished.Go(func() {
			var once sync.Once
			done := func() { once.Do(opened.Done) }
			defer done()
			if _, err := u.c.stream(sctx, id, done); err != nil && sctx.Err() == nil {
				e.add("idle stream", err)
			}
		})
	})
	opened.Wait()
	time.Sleep(settle)
	r.RSSAfter, r.after, r.natsAfter = st.gateway.sample().RSS, scrapeGo(ctx, st.base), st.nats.sample().RSS
	n := float64(len(users))
	r.RSSPerStream = (float64(r.RSSAfter) - float64(r.RSSBefore)) / n
	r.HeapPerStream = (r.after.HeapInuse - r.before.HeapInuse) / n
	r.GoroutinesPerStream = (r.after.Goroutines - r.before.Goroutines) / n
	r.NATSRSSPerStream = (float64(r.natsAfter) - float64(r.natsBefore)) / n
	r.GatewayRSSBeforeMiB, r.GatewayRSSAfterMiB = mib(r.RSSBefore), mib(r.RSSAfter)
	log.Info("idle streams measured", "streams", len(users), "rss_per_stream_kib", r.RSSPerStream/1024,
		"heap_per_stream_kib", r.HeapPerStream/1024, "goroutines_per_stream", r.GoroutinesPerStream)
	forEach(len(users), 64, func(i int) {
		if ids[i] == "" {
			return
		}
		if err := users[i].c.cancel(ctx, ids[i]); err != nil {
			e.add("idle cancel", err)
		}
	})
	waited := make(chan struct{})
	go func() { finished.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		e.add("idle", errors.New("streams still open 60 s after their answers were cancelled"))
		stopStreams()
		<-waited
	}
	r.Errors = e.count()
	return r
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// procStat is one process's consumption during the turns.
type procStat struct {
	Name        string  `json:"name"`
	Kind        string  `json:"kind"` // service, infra, provider, loadgen
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUPerTurn  float64 `json:"cpu_ms_per_turn"`
	RSSStartMiB float64 `json:"rss_start_mib"`
	RSSPeakMiB  float64 `json:"rss_peak_mib"`
	RSSEndMiB   float64 `json:"rss_end_mib"`
	LogErrors   int     `json:"log_errors,omitempty"`
	pid         int
	start, end  proc.Sample
	peak        uint64
}

// watched lists the processes whose consumption a run reports.
func watched(st *stack, in *infra) []*procStat {
	var ps []*procStat
	for _, p := range st.services {
		ps = append(ps, &procStat{Name: p.name, Kind: "service", pid: p.pid()})
	}
	ps = append(ps, &procStat{Name: "nats-server", Kind: "infra", pid: st.nats.pid()})
	if in.mysqldPID > 0 {
		ps = append(ps, &procStat{Name: "mariadb", Kind: "infra", pid: in.mysqldPID})
	}
	ps = append(ps, &procStat{Name: "fakehf (provider)", Kind: "provider", pid: in.fake.pid()},
		&procStat{Name: "load generator", Kind: "loadgen", pid: os.Getpid()})
	return ps
}

func sampleAll(ps []*procStat, first bool) {
	for _, p := range ps {
		s, err := proc.Read(p.pid)
		if err != nil {
			continue
		}
		if first {
			p.start = s
		}
		p.end = s
		p.peak = max(p.peak, s.RSS)
	}
}

// turnsResult is what the clients saw of the chat turns.
type turnsResult struct {
	TTFT, Full      []time.Duration
	Turns           int
	Elapsed         time.Duration
	Procs           []*procStat
	MachineBusy     float64 // share of the machine's CPU busy during the turns
	MachineCPU      time.Duration
	expectedContent string
}

// turns runs every user's chat turns at once (starts spread over ramp) and measures
// the processes meanwhile.
func turns(ctx context.Context, st *stack, in *infra, users []*user, o *options, e *errs, profile func(time.Duration)) turnsResult {
	r := turnsResult{Procs: watched(st, in), expectedContent: expectedAnswer(o.tokens)}
	var mu sync.Mutex
	sampleAll(r.Procs, true)
	m0, _ := proc.ReadMachine()
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				sampleAll(r.Procs, false)
			}
		}
	})
	if profile != nil {
		go profile(o.profileSeconds)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var done atomic.Int64
	for _, u := range users {
		wg.Go(func() {
			time.Sleep(time.Duration(int64(o.ramp) * int64(u.i) / int64(len(users))))
			good := 0 // this user's good turns
			if o.watch {
				stop := watch(ctx, u, e)
				defer func() { stop(good) }()
			}
			for k := range o.turns {
				tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				t0 := time.Now()
				id, err := u.c.send(tctx, u.chatID, fmt.Sprintf("Question %d of %s: what is a good name for a cat?", k+1, u.name))
				if err != nil {
					cancel()
					e.add("send", err)
					continue
				}
				res, err := u.c.stream(tctx, id, nil)
				if err != nil {
					// Counted as an error; then read the answer to its end as a
					// reconnecting EventSource would, so the next turn does not meet
					// 409 generation_in_progress.
					e.add("stream", err)
					for range 3 {
						if _, err := u.c.stream(tctx, id, nil); err == nil {
							break
						}
					}
					cancel()
					continue
				}
				cancel()
				switch {
				case res.Final != "done" || res.Status != "complete":
					e.add("answer", fmt.Errorf("final event %s, status %s", res.Final, res.Status))
					continue
				case res.Content != r.expectedContent:
					e.add("answer", fmt.Errorf("content %.60q..., want the provider's %d tokens", res.Content, o.tokens))
					continue
				case res.First.IsZero():
					e.add("answer", errors.New("done without any delta"))
					continue
				}
				done.Add(1)
				good++
				mu.Lock()
				r.TTFT = append(r.TTFT, res.First.Sub(t0))
				r.Full = append(r.Full, res.End.Sub(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	close(stopSampling)
	sampler.Wait()
	sampleAll(r.Procs, false)
	m1, _ := proc.ReadMachine()
	r.Turns = int(done.Load())
	if total := m1.Total - m0.Total; total > 0 {
		r.MachineBusy = float64(m1.Busy-m0.Busy) / float64(total)
		r.MachineCPU = m1.Busy - m0.Busy
	}
	for _, p := range r.Procs {
		cpu := p.end.CPU - p.start.CPU
		p.CPUSeconds = cpu.Seconds()
		if r.Turns > 0 {
			p.CPUPerTurn = float64(cpu.Microseconds()) / 1000 / float64(r.Turns)
		}
		p.RSSStartMiB, p.RSSPeakMiB, p.RSSEndMiB = mib(p.start.RSS), mib(p.peak), mib(p.end.RSS)
	}
	return r
}

// watch opens u's chat event stream and returns once it is open (or failed). The
// returned stop waits (at most 10 s) until the stream has shown the message.completed
// of each of the user's good turns, then closes it; a missing one is an error.
func watch(ctx context.Context, u *user, e *errs) (stop func(good int)) {
	wctx, cancel := context.WithCancel(ctx)
	var completed atomic.Int64
	opened := make(chan struct{})
	var once sync.Once
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer once.Do(func() { close(opened) })
		if err := u.c.watchChat(wctx, u.chatID, func() { once.Do(func() { close(opened) }) },
			func() { completed.Add(1) }); err != nil {
			e.add("watch", err)
		}
	}()
	<-opened
	return func(good int) {
		for deadline := time.Now().Add(10 * time.Second); completed.Load() < int64(good) && time.Now().Before(deadline); {
			select {
			case <-ended:
				deadline = time.Now()
			case <-time.After(20 * time.Millisecond):
			}
		}
		if n := completed.Load(); n < int64(good) {
			e.add("watch", fmt.Errorf("the chat's event stream showed %d message.completed events, want %d", n, good))
		}
		cancel()
		<-ended
	}
}

func expectedAnswer(n int) string {
	words := make([]string, n)
	for i := range words {
		words[i] = "token" + strconv.Itoa(i+1)
	}
	return strings.Join(words, " ")
}

// floorResult is the same load sent straight to the provider.
type floorResult struct {
	TTFT, Full []time.Duration
	Turns      int
	Elapsed    time.Duration
}

// floor sends the same load (users, turns, ramp) straight to the fake provider.
func floor(ctx context.Context, in *infra, n int, o *options, e *errs) floorResult {
	var r floorResult
	hc := &http.Client{Transport: newTransport(n)}
	defer hc.CloseIdleConnections()
	want := expectedAnswer(o.tokens)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(int64(o.ramp) * int64(i) / int64(n)))
			for k := range o.turns {
				tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				t0 := time.Now()
				res, err := provider(tctx, hc, in.fakeURL, "hf_fake_test_token", o.model,
					fmt.Sprintf("Question %d of floor%05d: what is a good name for a cat?", k+1, i))
				cancel()
				if err != nil {
					e.add("floor", err)
					continue
				}
				if res.Content.String() != want || res.First.IsZero() {
					e.add("floor", fmt.Errorf("content %.60q..., want %d tokens", res.Content.String(), o.tokens))
					continue
				}
				mu.Lock()
				r.TTFT = append(r.TTFT, res.First.Sub(t0))
				r.Full = append(r.Full, res.End.Sub(t0))
				r.Turns++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	return r
}

// loginResult is login throughput with auth's default argon2id parameters.
type loginResult struct {
	Params      string         `json:"argon2id"`
	Concurrency int            `json:"concurrency"`
	HashSlots   string         `json:"hash_concurrency"`
	Logins      int            `json:"logins"`
	Errors      int            `json:"errors"`
	Elapsed     float64        `json:"seconds"`
	PerSecond   float64        `json:"logins_per_second"`
	Latency     stats.Summary  `json:"latency"`
	AuthCPUMs   float64        `json:"auth_cpu_ms_per_login"`
	AuthRSSPeak float64        `json:"auth_rss_peak_mib"`
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
}

// loginBench measures logins per second against auth with its default parameters.
func loginBench(ctx context.Context, o *options, in *infra, log *slog.Logger) (loginResult, error) {
	r := loginResult{Params: "m=65536 KiB, t=3, p=4 (auth defaults)", Concurrency: o.loginConcurrency, HashSlots: "NumCPU = 2 (default)"}
	st, err := startStack(ctx, o, in, stackConfig{name: "login", users: o.loginConcurrency, workers: 1, defaultArgon2: true}, log)
	if st != nil {
		defer st.stop(in)
	}
	if err != nil {
		return r, err
	}
	hc := &http.Client{Transport: newTransport(o.loginConcurrency)}
	defer hc.CloseIdleConnections()
	var e errs
	names := make([]string, o.loginConcurrency)
	forEach(o.loginConcurrency, 2, func(i int) {
		names[i] = fmt.Sprintf("login%03d", i)
		c := &apiClient{base: st.base, hc: hc}
		if err := c.signup(ctx, names[i], benchPassword); err != nil {
			e.add("signup", err)
		}
	})
	if e.count() > 0 {
		return r, fmt.Errorf("login benchmark signup: %s", e.examples[0])
	}
	authProc := st.services[0]
	s0 := authProc.sample()
	var lat []time.Duration
	var mu sync.Mutex
	var peak atomic.Uint64
	deadline := time.Now().Add(o.loginDuration)
	start := time.Now()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if s := authProc.sample(); s.RSS > peak.Load() {
					peak.Store(s.RSS)
				}
			}
		}
	}()
	for i := range o.loginConcurrency {
		wg.Go(func() {
			c := &apiClient{base: st.base, hc: hc}
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := c.login(ctx, names[i], benchPassword); err != nil {
					e.add("login", err)
					continue
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(start)
	s1 := authProc.sample()
	r.Logins, r.Errors, r.Elapsed = len(lat), e.count(), elapsed.Seconds()
	r.PerSecond = float64(len(lat)) / elapsed.Seconds()
	r.Latency = stats.Summarize(lat)
	if len(lat) > 0 {
		r.AuthCPUMs = float64((s1.CPU - s0.CPU).Microseconds()) / 1000 / float64(len(lat))
	}
	r.AuthRSSPeak = mib(max(peak.Load(), s1.RSS))
	r.ErrorKinds = e.kinds
	return r, nil
}

// fetchProfiles takes a CPU profile of every service over d, saved in dir.
func fetchProfiles(st *stack, dir string, d time.Duration, log *slog.Logger) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("profiles", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, p := range st.services {
		if p.pprof == "" {
			continue
		}
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, int(d.Seconds()))
			res, err := http.Get(url)
			if err != nil {
				log.Warn("cpu profile", "service", p.name, "err", err)
				return
			}
			defer res.Body.Close()
			path := filepath.Join(dir, p.name+".cpu.pb.gz")
			f, err := os.Create(path)
			if err != nil {
				log.Warn("cpu profile", "service", p.name, "err", err)
				return
			}
			defer f.Close()
			if _, err := f.ReadFrom(res.Body); err != nil {
				log.Warn("cpu profile", "service", p.name, "err", err)
			}
			log.Info("cpu profile saved", "service", p.name, "path", path)
		})
	}
	wg.Wait()
}
