package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/bench/internal/proc"
	"github.com/parley-chat/parley/libs/devstack/mariadb"
)

// process is one child process of the benchmark: a service, NATS or the fake provider.
type process struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
	pprof string // host:port of its pprof server (profile mode), else empty
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) sample() proc.Sample {
	s, err := proc.Read(p.pid())
	if err != nil {
		return proc.Sample{}
	}
	return s
}

// start starts a child with env, its output going to logPath. When firstLine is set,
// stdout's first line is returned (the child's URL) and the rest is discarded.
func start(name, logPath string, env []string, firstLine bool, bin string, args ...string) (*process, string, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("create %s: %w", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = logf
	var out io.ReadCloser
	if firstLine {
		if out, err = cmd.StdoutPipe(); err != nil {
			return nil, "", fmt.Errorf("%s stdout: %w", name, err)
		}
	} else {
		cmd.Stdout = logf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	if !firstLine {
		return p, "", nil
	}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case line := <-lines:
		if line == "" {
			p.stop()
			return nil, "", fmt.Errorf("%s printed no address; see %s", name, logPath)
		}
		return p, line, nil
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s did not start within 30s; see %s", name, logPath)
	}
}

// stop sends SIGTERM and waits (SIGKILL after 20 s).
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// infra is what outlives one run: the private MariaDB and the fake provider.
type infra struct {
	dir       string
	db        *mariadb.Server
	root      *sql.DB
	fake      *process
	fakeURL   string
	mysqldPID int
}

func startInfra(ctx context.Context, o *options, log *slog.Logger) (*infra, error) {
	in := &infra{dir: o.dir}
	srv, err := mariadb.Start(ctx, filepath.Join(o.dir, "mysql"), log)
	if err != nil {
		return nil, err
	}
	in.db = srv
	if err := srv.EnsureUser(ctx, "parley", "parley", "*"); err != nil {
		return in, err
	}
	if in.root, err = srv.Root(); err != nil {
		return in, err
	}
	if b, err := os.ReadFile(filepath.Join(srv.Dir, "mysqld.pid")); err == nil {
		in.mysqldPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	in.fake, in.fakeURL, err = start("fakehf", filepath.Join(o.dir, "fakehf.log"), baseEnv(), true,
		filepath.Join(o.bin, "fakehf"), "-addr", "127.0.0.1:0", "-ttft", o.ttft.String(), "-gap", o.gap.String(),
		"-tokens", strconv.Itoa(o.tokens))
	if err != nil {
		return in, err
	}
	log.Info("infrastructure up", "mariadb_port", srv.Port, "fakehf", in.fakeURL)
	return in, nil
}

func (in *infra) close(log *slog.Logger) {
	if in.fake != nil {
		in.fake.stop()
	}
	if in.root != nil {
		in.root.Close()
	}
	if in.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := in.db.Stop(ctx); err != nil {
			log.Warn("stop mariadb", "err", err)
		}
	}
}

// baseEnv is the environment every child starts from: nothing of ours leaks in
// (no real HF token), only what a process needs to run.
func baseEnv() []string {
	env := []string{"GOTRACEBACK=single"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// stackConfig is one run's shape.
type stackConfig struct {
	name    string
	users   int
	workers int
	// defaultArgon2 keeps auth's default password hashing (the login benchmark);
	// otherwise small parameters keep signup/login from dominating the load.
	defaultArgon2 bool
}

// stack is one run's NATS server and services.
type stack struct {
	dir      string
	dbName   string
	nats     *process
	services []*process // auth, chat, inference-1..W, gateway
	gateway  *process
	base     string
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startStack starts NATS, auth, chat, the inference workers and the gateway on a fresh
// database and waits until the gateway is ready.
func startStack(ctx context.Context, o *options, in *infra, sc stackConfig, log *slog.Logger) (*stack, error) {
	dir := filepath.Join(o.dir, sc.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	st := &stack{dir: dir, dbName: "bench_" + strings.ReplaceAll(sc.name, "-", "_")}
	if _, err := in.root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+st.dbName+"`"); err != nil {
		return nil, fmt.Errorf("drop database: %w", err)
	}
	if _, err := in.root.ExecContext(ctx, "CREATE DATABASE `"+st.dbName+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	var natsURL string
	st.nats, natsURL, err = start("nats", filepath.Join(dir, "nats.log"), baseEnv(), true, self, "natsd", "-store", filepath.Join(dir, "nats"))
	if err != nil {
		return st, err
	}
	gwAddr, err := freeAddr()
	if err != nil {
		return st, err
	}
	st.base = "http://" + gwAddr
	common := append(baseEnv(),
		"NATS_URL="+natsURL, "DB_HOST=127.0.0.1", "DB_PORT="+strconv.Itoa(in.db.Port),
		"DB_USERNAME=parley", "DB_PASSWORD=parley", "DB_NAME="+st.dbName)
	common = append(common, o.extraEnv...)
	authEnv := []string{
		"AUTH_HASH_QUEUE=100000", "AUTH_LOGIN_IP_PER_MINUTE=10000000", "AUTH_LOGIN_IP_BURST=10000000",
		"AUTH_REQUEST_TIMEOUT=60s",
	}
	if !sc.defaultArgon2 {
		authEnv = append(authEnv, "AUTH_ARGON2_MEMORY_KIB="+strconv.Itoa(o.argonMemKiB), "AUTH_ARGON2_TIME=1", "AUTH_ARGON2_THREADS=1")
	}
	conc := max(8, sc.users)
	infEnv := []string{
		"HF_API_TOKEN=hf_fake_test_token", "HF_CHAT_BASE_URL=" + in.fakeURL, "OLLAMA_URL=",
		"INFERENCE_CONCURRENCY=" + strconv.Itoa(conc),
		"INFERENCE_MAX_ACK_PENDING=" + strconv.Itoa(2*conc*sc.workers+64),
	}
	gwEnv := []string{
		"GATEWAY_ADDR=" + gwAddr, "WEB_DIR=" + filepath.Join(dir, "no-web"),
		"GATEWAY_SEND_RATE=10000000", "GATEWAY_AUTH_RATE=10000000",
	}
	type svc struct {
		name, bin string
		env       []string
	}
	svcs := []svc{{"auth", "auth", authEnv}, {"chat", "chat", nil}}
	for i := range sc.workers {
		svcs = append(svcs, svc{fmt.Sprintf("inference-%d", i+1), "inference", infEnv})
	}
	svcs = append(svcs, svc{"gateway", "gateway", gwEnv})
	for _, s := range svcs {
		env := append(append([]string(nil), common...), s.env...)
		bin, args := filepath.Join(o.bin, s.bin), []string(nil)
		var pprofAddr string
		if o.profile {
			if pprofAddr, err = freeAddr(); err != nil {
				return st, err
			}
			env = append(env, "PARLEY_PPROF_ADDR="+pprofAddr)
			bin, args = filepath.Join(o.bin, "parleysvc"), []string{s.bin}
		}
		p, _, err := start(s.name, filepath.Join(dir, s.name+".log"), env, false, bin, args...)
		if err != nil {
			return st, err
		}
		p.pprof = pprofAddr
		st.services = append(st.services, p)
		if s.name == "gateway" {
			st.gateway = p
		}
	}
	if err := st.waitReady(ctx); err != nil {
		return st, err
	}
	log.Info("stack ready", "run", sc.name, "gateway", st.base, "workers", sc.workers)
	return st, nil
}

func (st *stack) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		for _, p := range append([]*process{st.nats}, st.services...) {
			if p.exited() {
				return fmt.Errorf("%s exited at start; see %s", p.name, p.log)
			}
		}
		if res, err := hc.Get(st.base + "/readyz?deps=1"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the stack was not ready within 90s; see the logs in " + st.dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop stops the services in reverse order, then NATS, and drops the database.
func (st *stack) stop(in *infra) {
	for i := len(st.services) - 1; i >= 0; i-- {
		st.services[i].stop()
	}
	if st.nats != nil {
		st.nats.stop()
	}
	_ = os.RemoveAll(filepath.Join(st.dir, "nats"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = in.root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+st.dbName+"`")
}

// logErrors counts the lines at level ERROR in a service's log.
func logErrors(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"level":"ERROR"`) {
			n++
		}
	}
	return n
}
