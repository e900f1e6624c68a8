// Command fakehf runs the fake HuggingFace router (libs/devstack/fakehf) on its own
// port, for benchmarks and manual runs. It prints its OpenAI-compatible base URL (what
// HF_CHAT_BASE_URL takes) as the first line on stdout, then logs on stderr:
//
//	fakehf -addr 127.0.0.1:8089 -ttft 200ms -gap 20ms -tokens 50
//	HF_CHAT_BASE_URL=$(...) HF_API_TOKEN=hf_fake_test_token make run
//
// Failures are scripted with preset names (see fakehf.Preset: 429, 429-retry-after,
// 503-loading, 401, 404, 400-model, 400-context, 500, 502, drop:3, mid-error-tgi,
// stall, ...): -script queues presets used once each in order; -always applies one to
// every request, or with -every N to every Nth request. A single request picks one with
// the header X-Fakehf-Step or a `[fakehf:NAME]` marker in the last user message.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakehf:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, token, script, always, models string
	ttft, gap, keepAlive                time.Duration
	tokens, every                       int
	tgi, strictRoles                    bool
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("fakehf", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8089", "listen address (port 0 picks a free one)")
	fs.StringVar(&o.token, "token", fakehf.DefaultToken, "accepted bearer token(s), comma-separated")
	fs.DurationVar(&o.ttft, "ttft", 200*time.Millisecond, "time to the first token")
	fs.DurationVar(&o.gap, "gap", 20*time.Millisecond, "gap between tokens")
	fs.IntVar(&o.tokens, "tokens", 50, "answer length in tokens (0: echo the question)")
	fs.StringVar(&o.script, "script", "", "presets used once each, in order, e.g. 429-retry-after,ok,drop:3")
	fs.StringVar(&o.always, "always", "", "a preset applied to every request (or every Nth with -every)")
	fs.IntVar(&o.every, "every", 1, "with -always: apply it to every Nth request only")
	fs.StringVar(&o.models, "models", "", "served model ids, comma-separated (default: the Mistral instruct models)")
	fs.DurationVar(&o.keepAlive, "keepalive", 0, "write an SSE comment this often while waiting (0: never)")
	fs.BoolVar(&o.tgi, "tgi", false, "raw TGI framing (data:{...} without a space)")
	fs.BoolVar(&o.strictRoles, "strict-roles", false, "refuse a system role and non-alternating roles (Mistral v0.1/v0.2 template)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.every < 1 {
		return o, errors.New("-every must be at least 1")
	}
	for _, name := range append(splitList(o.script), splitList(o.always)...) {
		if _, ok := fakehf.Preset(name); !ok {
			return o, fmt.Errorf("unknown preset %q", name)
		}
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// reply answers with exactly n word tokens.
func reply(n int) func(fakehf.ChatRequest) string {
	words := make([]string, n)
	for i := range words {
		words[i] = "token" + strconv.Itoa(i+1)
	}
	text := strings.Join(words, " ")
	return func(fakehf.ChatRequest) string { return text }
}

func newServer(o options) http.Handler {
	opts := fakehf.Options{
		Tokens: splitList(o.token), FirstTokenDelay: o.ttft, TokenDelay: o.gap, KeepAlive: o.keepAlive,
		StrictRoles: o.strictRoles,
	}
	if o.tgi {
		opts.Framing = fakehf.FramingTGI
	}
	if o.tokens > 0 {
		opts.Reply = reply(o.tokens)
	}
	for _, id := range splitList(o.models) {
		opts.Models = append(opts.Models, fakehf.Model{ID: id, ContextLength: 32768})
	}
	fake := fakehf.NewHandler(opts)
	for _, name := range splitList(o.script) {
		st, _ := fakehf.Preset(name)
		fake.Enqueue("", st)
	}
	if o.always == "" {
		return fake
	}
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/chat/completions" && r.Header.Get("X-Fakehf-Step") == "" && n.Add(1)%int64(o.every) == 0 {
			r.Header.Set("X-Fakehf-Step", o.always)
		}
		fake.ServeHTTP(w, r)
	})
}

func run(args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	srv := &http.Server{Handler: newServer(o), ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String() + "/v1"
	fmt.Println(base)
	log.Info("fake HuggingFace router listening", "base_url", base, "ttft", o.ttft, "gap", o.gap, "tokens", o.tokens,
		"script", o.script, "always", o.always, "every", o.every)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}
