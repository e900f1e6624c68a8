// Command parleybench is Parley's load generator. It starts the platform as separate
// processes (an embedded NATS server, auth, chat, N inference workers and the gateway,
// on a private MariaDB and a fake HuggingFace provider with a fixed time to first token
// and inter-token gap), then drives simulated users through the public HTTP API: sign
// up, log in, open a new chat, send messages and read each streamed answer to its end.
// It reports the platform's overhead on time to first token and on the full answer
// (client-seen time minus the provider's own), chat turns per second, errors, CPU per
// chat turn and memory of each process, memory per open stream, and a floor: the same
// load sent straight to the provider in the same run. A last run measures login
// throughput with auth's default argon2id parameters.
//
//	parleybench -bin ./bin -users 10,100,500,1000 -workers 1,2,4 -out bench/results
//
// `parleybench natsd -store DIR` is the embedded NATS server it starts as a process of
// its own (so its CPU and memory are measured apart from the load generator's).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/bench/internal/stats"
	"github.com/parley-chat/parley/libs/devstack/natsserver"
)

// options are the command's flags.
type options struct {
	bin, dir, out    string
	users, workers   []int
	turns, tokens    int
	ttft, gap, ramp  time.Duration
	settle           time.Duration
	model            string
	argonMemKiB      int
	profile          bool
	profileSeconds   time.Duration
	login            bool
	loginConcurrency int
	loginDuration    time.Duration
	idle             bool
	watch            bool
	extraEnv         []string
	keep             bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "natsd" {
		if err := natsd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "natsd:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parse(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("parleybench", flag.ContinueOnError)
	users := fs.String("users", "10,100,500,1000", "concurrent users of each run, comma-separated")
	workers := fs.String("workers", "1,2,4", "inference workers of each run, comma-separated (every users x workers pair is run)")
	env := fs.String("env", "", "extra environment for every service, comma-separated NAME=value (e.g. DB_MAX_OPEN_CONNS=50)")
	fs.StringVar(&o.bin, "bin", "bin", "directory holding auth, chat, inference, gateway, fakehf (and parleysvc with -profile)")
	fs.StringVar(&o.dir, "dir", "", "working directory for MariaDB, NATS and logs (default: a new temporary one, removed at the end)")
	fs.StringVar(&o.out, "out", "bench/results", "directory for the report (results.md, results.json)")
	fs.IntVar(&o.turns, "turns", 3, "messages each user sends, one after the other")
	fs.IntVar(&o.tokens, "tokens", 50, "tokens of every answer")
	fs.DurationVar(&o.ttft, "ttft", 200*time.Millisecond, "the provider's time to first token")
	fs.DurationVar(&o.gap, "gap", 20*time.Millisecond, "the provider's gap between tokens")
	fs.DurationVar(&o.ramp, "ramp", time.Second, "users start spread evenly over this time")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait after the idle streams are open before reading memory")
	fs.StringVar(&o.model, "model", "mistralai/Mistral-7B-Instruct-v0.3", "model the floor asks the provider for")
	fs.IntVar(&o.argonMemKiB, "argon2-memory", 1024, "auth's argon2id memory (KiB) during the load runs (t=1, p=1)")
	fs.BoolVar(&o.profile, "profile", false, "run the services as parleysvc with pprof and save CPU profiles of the turns")
	fs.DurationVar(&o.profileSeconds, "profile-seconds", 5*time.Second, "length of each CPU profile")
	fs.BoolVar(&o.login, "login", true, "also measure login throughput with the default argon2id parameters")
	fs.IntVar(&o.loginConcurrency, "login-concurrency", 8, "concurrent clients of the login benchmark")
	fs.DurationVar(&o.loginDuration, "login-duration", 10*time.Second, "length of the login benchmark")
	fs.BoolVar(&o.idle, "idle", true, "measure memory per idle open stream, on a stack of its own, once per users count")
	fs.BoolVar(&o.watch, "watch", false, "each user also holds its chat's live event stream (GET /api/chats/{id}/events) open during its turns, as the web app does, and must see every answer's message.completed on it")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (logs, profiles)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.users, err = intList(*users); err != nil {
		return nil, fmt.Errorf("-users: %w", err)
	}
	if o.workers, err = intList(*workers); err != nil {
		return nil, fmt.Errorf("-workers: %w", err)
	}
	for kv := range strings.SplitSeq(*env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				return nil, fmt.Errorf("-env: %q is not NAME=value", kv)
			}
			o.extraEnv = append(o.extraEnv, kv)
		}
	}
	return o, nil
}

// natsd runs the embedded NATS server until SIGTERM, printing its URL first.
func natsd(args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	store := fs.String("store", "", "JetStream store directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ns, err := natsserver.Start(natsserver.Options{StoreDir: *store})
	if err != nil {
		return err
	}
	fmt.Println(ns.ClientURL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// runResult is one run's figures.
type runResult struct {
	Name       string         `json:"name"`
	Users      int            `json:"users"`
	Workers    int            `json:"workers"`
	SetupSecs  float64        `json:"setup_seconds"`
	Turns      int            `json:"turns"`
	TurnSecs   float64        `json:"turns_seconds"`
	TurnsPerS  float64        `json:"turns_per_second"`
	FloorPerS  float64        `json:"floor_turns_per_second"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	Examples   []string       `json:"error_examples,omitempty"`

	// Raw client-seen times, the floor's, and the overheads (minus the provider's
	// nominal time: ttft, and ttft + (tokens-1) x gap for the full answer).
	TTFT          stats.Summary `json:"ttft"`
	Full          stats.Summary `json:"full"`
	FloorTTFT     stats.Summary `json:"floor_ttft"`
	FloorFull     stats.Summary `json:"floor_full"`
	TTFTOverhead  stats.Summary `json:"ttft_overhead"`
	FullOverhead  stats.Summary `json:"full_overhead"`
	FloorTTFTOver stats.Summary `json:"floor_ttft_overhead"`
	FloorFullOver stats.Summary `json:"floor_full_overhead"`

	Procs            []*procStat `json:"processes"`
	ServicesCPUPerT  float64     `json:"services_cpu_ms_per_turn"`
	InfraCPUPerT     float64     `json:"infra_cpu_ms_per_turn"`
	MachineBusy      float64     `json:"machine_busy"`
	OtherCPUPerTurn  float64     `json:"other_cpu_ms_per_turn"`
	Idle             *idleResult `json:"idle_streams,omitempty"`
	ServiceLogErrors int         `json:"service_log_errors"`
}

// report is the whole benchmark's output.
type report struct {
	Started   time.Time    `json:"started"`
	Machine   string       `json:"machine"`
	Command   string       `json:"command"`
	Provider  string       `json:"provider"`
	Runs      []*runResult `json:"runs"`
	Login     *loginResult `json:"login,omitempty"`
	Elapsed   float64      `json:"elapsed_seconds"`
	Conditons string       `json:"conditions"`
}

func run(ctx context.Context, o *options, log *slog.Logger) error {
	rep := &report{Started: time.Now(), Machine: machine(), Command: "parleybench " + strings.Join(os.Args[1:], " "),
		Provider: fmt.Sprintf("fakehf: time to first token %v, gap %v, %d tokens", o.ttft, o.gap, o.tokens)}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "parleybench-")
		if err != nil {
			return fmt.Errorf("create working directory: %w", err)
		}
		o.dir = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	o.dir, _ = filepath.Abs(o.dir)
	o.bin, _ = filepath.Abs(o.bin)
	log.Info("parleybench", "dir", o.dir, "bin", o.bin, "users", o.users, "workers", o.workers)
	in, err := startInfra(ctx, o, log)
	if in != nil {
		defer in.close(log)
	}
	if err != nil {
		return err
	}
	m0, _ := readMachineBusy()
	for _, w := range o.workers {
		for _, n := range o.users {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := oneRun(ctx, o, in, n, w, log)
			if err != nil {
				return fmt.Errorf("run %d users x %d workers: %w", n, w, err)
			}
			if o.idle && w == o.workers[0] {
				ir, err := idleRun(ctx, o, in, n, w, log)
				if err != nil {
					return fmt.Errorf("idle streams of %d users: %w", n, err)
				}
				r.Idle = ir
			}
			rep.Runs = append(rep.Runs, r)
			if err := writeReport(o, rep); err != nil {
				return err
			}
		}
	}
	if o.login {
		lr, err := loginBench(ctx, o, in, log)
		if err != nil {
			return fmt.Errorf("login benchmark: %w", err)
		}
		rep.Login = &lr
	}
	rep.Elapsed = time.Since(rep.Started).Seconds()
	if m1, err := readMachineBusy(); err == nil && m0 != nil {
		rep.Conditons = fmt.Sprintf("machine CPU busy %.0f%% on average over the whole benchmark", 100*m1.share(*m0))
	}
	if err := writeReport(o, rep); err != nil {
		return err
	}
	fmt.Println(markdown(rep))
	return nil
}

// oneRun starts a fresh stack for n users and w workers and measures it.
func oneRun(ctx context.Context, o *options, in *infra, n, w int, log *slog.Logger) (*runResult, error) {
	name := fmt.Sprintf("u%d-w%d", n, w)
	r := &runResult{Name: name, Users: n, Workers: w}
	st, err := startStack(ctx, o, in, stackConfig{name: name, users: n, workers: w}, log)
	if st != nil {
		defer st.stop(in)
	}
	if err != nil {
		return r, err
	}
	tr := newTransport(n)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var e errs
	t0 := time.Now()
	users := setup(ctx, st, hc, n, &e)
	r.SetupSecs = time.Since(t0).Seconds()
	if e.count() > 0 {
		return r, fmt.Errorf("setup: %d errors, e.g. %s", e.count(), e.examples[0])
	}
	log.Info("users ready", "run", name, "users", n, "seconds", r.SetupSecs)
	var profile func(time.Duration)
	if o.profile {
		profile = func(d time.Duration) { fetchProfiles(st, filepath.Join(o.out, "profiles", name), d, log) }
	}
	tr2 := turns(ctx, st, in, users, o, &e, profile)
	log.Info("turns done", "run", name, "turns", tr2.Turns, "seconds", tr2.Elapsed.Seconds(), "errors", e.count())
	fr := floor(ctx, in, n, o, &e)
	log.Info("floor done", "run", name, "turns", fr.Turns, "seconds", fr.Elapsed.Seconds())
	r.Turns, r.TurnSecs = tr2.Turns, tr2.Elapsed.Seconds()
	r.TurnsPerS = float64(tr2.Turns) / tr2.Elapsed.Seconds()
	r.FloorPerS = float64(fr.Turns) / fr.Elapsed.Seconds()
	r.Errors, r.ErrorKinds, r.Examples = e.count(), e.kinds, e.examples
	nominalFull := o.ttft + time.Duration(o.tokens-1)*o.gap
	r.TTFT, r.Full = stats.Summarize(tr2.TTFT), stats.Summarize(tr2.Full)
	r.FloorTTFT, r.FloorFull = stats.Summarize(fr.TTFT), stats.Summarize(fr.Full)
	r.TTFTOverhead, r.FullOverhead = stats.Summarize(stats.Minus(tr2.TTFT, o.ttft)), stats.Summarize(stats.Minus(tr2.Full, nominalFull))
	r.FloorTTFTOver, r.FloorFullOver = stats.Summarize(stats.Minus(fr.TTFT, o.ttft)), stats.Summarize(stats.Minus(fr.Full, nominalFull))
	r.Procs, r.MachineBusy = tr2.Procs, tr2.MachineBusy
	var ours time.Duration
	for _, p := range r.Procs {
		ours += time.Duration(p.CPUSeconds * float64(time.Second))
		switch p.Kind {
		case "service":
			r.ServicesCPUPerT += p.CPUPerTurn
		case "infra":
			r.InfraCPUPerT += p.CPUPerTurn
		}
	}
	if r.Turns > 0 {
		r.OtherCPUPerTurn = float64((tr2.MachineCPU - ours).Microseconds()) / 1000 / float64(r.Turns)
	}
	for _, p := range st.services {
		nerr := logErrors(p.log)
		r.ServiceLogErrors += nerr
		for _, ps := range r.Procs {
			if ps.Name == p.name {
				ps.LogErrors = nerr
			}
		}
	}
	return r, nil
}

// idleRun measures memory per idle open stream on a fresh stack: the gateway's RSS
// before and after n users each open a stream on an answer the provider holds. It has
// a stack of its own because the answers are cancelled afterwards, and a burst of n
// cancellations before the turns left chat's sends timing out (docs/benchmarks.md).
func idleRun(ctx context.Context, o *options, in *infra, n, w int, log *slog.Logger) (*idleResult, error) {
	st, err := startStack(ctx, o, in, stackConfig{name: fmt.Sprintf("idle-u%d", n), users: n, workers: w}, log)
	if st != nil {
		defer st.stop(in)
	}
	if err != nil {
		return nil, err
	}
	tr := newTransport(n)
	defer tr.CloseIdleConnections()
	var e errs
	users := setup(ctx, st, &http.Client{Transport: tr}, n, &e)
	if e.count() > 0 {
		return nil, fmt.Errorf("setup: %d errors, e.g. %s", e.count(), e.examples[0])
	}
	ir := idleStreams(ctx, st, users, o.settle, &e, log)
	return &ir, nil
}

type machineBusy struct{ busy, total time.Duration }

func (m machineBusy) share(prev machineBusy) float64 {
	if m.total <= prev.total {
		return 0
	}
	return float64(m.busy-prev.busy) / float64(m.total-prev.total)
}

func readMachineBusy() (*machineBusy, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	var user, nice, system, idle, iowait, irq, softirq, steal uint64
	if _, err := fmt.Sscanf(string(b), "cpu %d %d %d %d %d %d %d %d", &user, &nice, &system, &idle, &iowait, &irq, &softirq, &steal); err != nil {
		return nil, err
	}
	total := user + nice + system + idle + iowait + irq + softirq + steal
	return &machineBusy{busy: time.Duration(total-idle-iowait) * 10 * time.Millisecond, total: time.Duration(total) * 10 * time.Millisecond}, nil
}

// machine describes this machine: CPU model and count, memory, kernel, Go.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d x %s%s%s, %s", runtime.NumCPU(), cpu, mem, kernel, runtime.Version())
}

func writeReport(o *options, rep *report) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.out, err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), b, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(markdown(rep)), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
