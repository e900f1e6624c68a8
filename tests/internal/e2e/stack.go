// Package e2e runs the whole product in one test process for end-to-end tests and
// drills: a real NATS server that can be stopped and started again on the same port and
// store, a real MariaDB database, the fake HuggingFace router, and auth, chat, any
// number of inference workers and any number of gateway replicas through their Run
// functions, each of which can be stopped and started on its own. Tests talk to the
// product through the gateway's HTTP API only (plus JetStream and the database for
// observations a client cannot make).
package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/devstack/natsserver"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
)

// Password is the password of every test user (long enough, not a common one).
const Password = "correct horse battery staple 42"

// Model is the model every chat uses.
const Model = "mistralai/Mistral-7B-Instruct-v0.3"

// Options shape a stack. Zero values give one gateway, one worker, a shared fake
// HuggingFace router and a fresh database on the shared test server.
type Options struct {
	// Gateways and Workers are how many gateway replicas and inference workers run.
	Gateways, Workers int
	// KeepAlive is the gateway's SSE keepalive interval (default 15 s).
	KeepAlive time.Duration
	// HFOptions configure the shared fake router.
	HFOptions fakehf.Options
	// DB replaces the fresh test database (a drill's private MariaDB server).
	DB *db.Config
	// NATSURL, when set, is a NATS server the test runs itself (one with users and
	// permissions, say); the stack then starts none (Stack.NATS is nil).
	NATSURL string
	// WorkerNATSURL, when set, gives worker i its own NATS URL given the server's (a
	// proxy that a drill can cut to make the worker vanish).
	WorkerNATSURL func(i int, natsURL string) string
	// WorkerHF, when set, gives worker i its own fake router.
	WorkerHF func(i int) *Fake
	// Auth, Chat, Inference and Gateway adjust the services' configurations.
	Auth      func(*auth.Config)
	Chat      func(*chat.Config)
	Inference func(i int, cfg *inference.Config)
	Gateway   func(i int, cfg *gateway.Config)
	// LogLevel of the services' logs in the test log (default warn).
	LogLevel slog.Level
	// ShowLevel, when set, keeps lines below it out of the test log (they are still
	// kept and watched).
	ShowLevel *slog.Level
	// KeepLogs keeps every log line for Stack.Logs.
	KeepLogs bool
	// LogWatch, when set, sees every log line of every service.
	LogWatch func(line string)
}

// Stack is the running product.
type Stack struct {
	T    *testing.T
	NATS *NATS
	HF   *Fake
	// DB is the database configuration the services use; SQL is a handle on it for
	// observations (nil with Options.DB).
	DB  db.Config
	SQL *sql.DB

	Auth, Chat *Service
	// AuthConfig is auth's configuration; a change takes effect when Auth starts again.
	AuthConfig auth.Config
	Workers    []*Service
	Gateways   []*Service
	// URLs are the gateways' base URLs, in the order of Gateways.
	URLs []string
	// OnResponse, when set, sees every answer a Client of the stack gets.
	OnResponse func(method, path string, res Response)

	logs    *logWriter
	natsURL string

	mu  sync.Mutex
	sub *testing.T
}

// Use makes t (a subtest of T) the test that the stack's clients report to from now on
// (services and logs keep reporting to T).
func (s *Stack) Use(t *testing.T) {
	s.mu.Lock()
	s.sub = t
	s.mu.Unlock()
}

// Current is the test the stack's clients report to: the last one given to Use, or T.
func (s *Stack) Current() *testing.T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub != nil {
		return s.sub
	}
	return s.T
}

// New starts a stack and waits until every gateway is ready.
func New(t *testing.T, opts Options) *Stack {
	t.Helper()
	if opts.Gateways <= 0 {
		opts.Gateways = 1
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	s := &Stack{T: t, logs: &logWriter{t: t, keep: opts.KeepLogs, show: opts.ShowLevel}}
	if opts.LogWatch != nil {
		s.logs.watch = append(s.logs.watch, opts.LogWatch)
	}
	t.Cleanup(s.logs.stop)
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: opts.LogLevel}))
	if opts.LogLevel == 0 {
		log = slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	if opts.DB != nil {
		s.DB = *opts.DB
	} else {
		d := testdb.New(t)
		s.DB = db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name, MaxOpen: 10}
		s.SQL = d.DB
	}
	if opts.NATSURL != "" {
		s.natsURL = opts.NATSURL
	} else {
		s.NATS = StartNATS(t)
		s.natsURL = s.NATS.URL()
	}
	s.HF = NewFake(opts.HFOptions)
	t.Cleanup(s.HF.Close)
	url := s.natsURL

	s.AuthConfig = auth.Config{
		NATSURL: url, DB: s.DB,
		RequestTimeout: 5 * time.Second, AccessTokenTTL: 15 * time.Minute,
		SessionIdleTimeout: time.Hour, SessionAbsoluteTimeout: 12 * time.Hour, RefreshReuseGrace: 10 * time.Second,
		// Small argon2 parameters keep the tests fast.
		Argon2MemoryKiB: 1024, Argon2Time: 1, Argon2Threads: 1, HashConcurrency: 4, HashQueue: 64,
		LoginIPPerMinute: 100000, LoginIPBurst: 100000, KeyMaxAge: 720 * time.Hour,
	}
	if opts.Auth != nil {
		opts.Auth(&s.AuthConfig)
	}
	s.Auth = s.service("auth", func(ctx context.Context) error {
		return auth.Run(ctx, s.AuthConfig, auth.Deps{Logger: log.With("service", "auth")})
	})
	chatCfg := chat.Config{NATSURL: url, DB: s.DB}
	if opts.Chat != nil {
		opts.Chat(&chatCfg)
	}
	s.Chat = s.service("chat", func(ctx context.Context) error {
		return chat.Run(ctx, chatCfg, chat.Deps{Logger: log.With("service", "chat")})
	})
	for i := range opts.Workers {
		hf := s.HF
		if opts.WorkerHF != nil {
			hf = opts.WorkerHF(i)
		}
		wurl := url
		if opts.WorkerNATSURL != nil {
			wurl = opts.WorkerNATSURL(i, url)
		}
		cfg := inference.Config{
			NATSURL: wurl, HFToken: hf.Token(), HFBaseURL: hf.BaseURL(), HFModel: Model, MaxTokens: 256,
			RetryBase: 50 * time.Millisecond, RetryMaxWait: 10 * time.Second, ShutdownTimeout: 5 * time.Second,
		}
		if opts.Inference != nil {
			opts.Inference(i, &cfg)
		}
		name := fmt.Sprintf("inference-%d", i)
		s.Workers = append(s.Workers, s.service(name, func(ctx context.Context) error {
			return inference.Run(ctx, cfg, inference.Deps{Logger: log.With("service", name)})
		}))
	}
	for i := range opts.Gateways {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		cfg := gateway.Config{NATSURL: url, WebDir: t.TempDir(), SendRate: 100000, AuthRate: 100000, KeepAlive: opts.KeepAlive}
		if opts.Gateway != nil {
			opts.Gateway(i, &cfg)
		}
		name := fmt.Sprintf("gateway-%d", i)
		first := ln
		s.Gateways = append(s.Gateways, s.service(name, func(ctx context.Context) error {
			l := first
			first = nil
			if l == nil {
				// A restart listens on the same address again.
				var err error
				if l, err = net.Listen("tcp", addr); err != nil {
					return fmt.Errorf("listen again on %s: %w", addr, err)
				}
			}
			return gateway.Run(ctx, cfg, gateway.Deps{Logger: log.With("service", name), Listener: l})
		}))
		s.URLs = append(s.URLs, "http://"+addr)
	}
	for _, svc := range s.all() {
		svc.Start()
	}
	s.WaitReady(60 * time.Second)
	return s
}

func (s *Stack) all() []*Service {
	out := []*Service{s.Auth, s.Chat}
	out = append(out, s.Workers...)
	return append(out, s.Gateways...)
}

// StopAll stops every service at once (as a whole-product restart would) and waits.
func (s *Stack) StopAll() {
	s.T.Helper()
	var wg sync.WaitGroup
	for _, svc := range s.all() {
		wg.Go(svc.Stop)
	}
	wg.Wait()
}

// StartAll starts every stopped service.
func (s *Stack) StartAll() {
	for _, svc := range s.all() {
		svc.Start()
	}
}

// WaitReady waits until every gateway's /readyz answers 200.
func (s *Stack) WaitReady(within time.Duration) {
	s.T.Helper()
	deadline := time.Now().Add(within)
	for _, base := range s.URLs {
		for {
			res, err := http.Get(base + "/readyz?deps=1")
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				s.T.Fatalf("%s not ready: %v %s", base, err, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// JetStream opens a JetStream context on the current NATS server, for observations.
func (s *Stack) JetStream() jetstream.JetStream {
	s.T.Helper()
	nc, err := nats.Connect(s.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		s.T.Fatalf("connect to nats: %v", err)
	}
	s.T.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		s.T.Fatal(err)
	}
	return js
}

// Service is one service's Run, which a test can stop and start again.
type Service struct {
	Name  string
	s     *Stack
	run   func(ctx context.Context) error
	mu    sync.Mutex
	stop  context.CancelFunc
	ended chan error
}

func (s *Stack) service(name string, run func(ctx context.Context) error) *Service {
	svc := &Service{Name: name, s: s, run: run}
	s.T.Cleanup(svc.Stop)
	return svc
}

// Start runs the service in a goroutine (no-op when it runs already).
func (v *Service) Start() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.stop = cancel
	v.ended = make(chan error, 1)
	ended := v.ended
	go func() { ended <- v.run(ctx) }()
}

// Stop cancels the service's context and waits for Run to return; an error from Run
// fails the test.
func (v *Service) Stop() {
	if err := v.StopErr(); err != nil {
		v.s.T.Errorf("%s.Run returned %v", v.Name, err)
	}
}

// StopErr is Stop returning Run's error instead of failing the test.
func (v *Service) StopErr() error {
	v.mu.Lock()
	stop, ended := v.stop, v.ended
	v.stop = nil
	v.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	select {
	case err := <-ended:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not stop within 30s", v.Name)
	}
}

// NATS is an embedded NATS server that a drill can stop and start again on the same
// port and store directory, while the services keep running.
type NATS struct {
	t    *testing.T
	dir  string
	port int
	mu   sync.Mutex
	srv  *server.Server
}

// StartNATS starts a JetStream server on a random port under t.TempDir().
func StartNATS(t *testing.T) *NATS {
	t.Helper()
	n := &NATS{t: t, dir: t.TempDir()}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// URL is the server's client URL; it stays the same across restarts.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Start starts the server (again, on the same port and store).
func (n *NATS) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	var err error
	for range 50 { // the old listener may take a moment to free the port
		n.srv, err = natsserver.Start(natsserver.Options{Port: n.port, StoreDir: n.dir})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatalf("start nats: %v", err)
	}
	if n.port == 0 {
		n.port = n.srv.Addr().(*net.TCPAddr).Port
	}
}

// Stop shuts the server down (every client connection drops).
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// logWriter sends the services' logs to the test log while the test runs.
type logWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
	// watch, when set, sees every line.
	watch []func(string)
	// keep keeps every line in buf.
	keep bool
	buf  strings.Builder
	// show, when set, is the lowest level shown in the test log.
	show *slog.Level
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := strings.TrimRight(string(p), "\n")
	for _, fn := range w.watch {
		fn(line)
	}
	if w.keep {
		w.buf.Write(p)
	}
	if !w.done && w.shown(line) {
		w.t.Log(line)
	}
	return len(p), nil
}

// shown reports whether a line's level (slog's text format) reaches w.show.
func (w *logWriter) shown(line string) bool {
	if w.show == nil {
		return true
	}
	_, rest, ok := strings.Cut(line, " level=")
	if !ok {
		return true
	}
	name, _, _ := strings.Cut(rest, " ")
	var level slog.Level
	if level.UnmarshalText([]byte(name)) != nil {
		return true
	}
	return level >= *w.show
}

// Logs returns every log line so far (Options.KeepLogs).
func (s *Stack) Logs() string {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	return s.logs.buf.String()
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Eventually retries check every 50 ms until it returns nil or within passes; then it
// fails the test with the last error.
func Eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
