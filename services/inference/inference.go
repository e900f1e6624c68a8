// Package inference is the inference worker service: it consumes message.created
// events from JetStream, streams answers from HuggingFace's router or an
// OpenAI-compatible server (or the offline demo model when neither is configured),
// publishes generation events, stores the result through chat, and serves the model
// list.
package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
	"github.com/parley-chat/parley/services/inference/internal/provider"
	"github.com/parley-chat/parley/services/inference/internal/transport"
)

// Defaults for HuggingFace.
const (
	DefaultHFBaseURL = "https://router.huggingface.co/v1"
	DefaultHFModel   = "mistralai/Mistral-7B-Instruct-v0.3"
)

// DefaultHFModels are offered when HF_CHAT_MODELS is empty (HF_CHAT_MODEL goes first).
var DefaultHFModels = []string{
	"mistralai/Mistral-7B-Instruct-v0.3",
	"mistralai/Mistral-Nemo-Instruct-2407",
	"mistralai/Mistral-Small-3.1-24B-Instruct-2503",
	"mistralai/Mixtral-8x7B-Instruct-v0.1",
}

// Config configures the workers. Zero values take the defaults below (so tests can
// build literals).
type Config struct {
	NATSURL string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	// NATSTLS is NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY (TLS to NATS; see events.NATSTLS).
	NATSTLS events.NATSTLS
	// NATSNKey is NATS_NKEY_SEED_FILE (an NKey user seed to sign in to NATS with; see
	// events.NATSNKey).
	NATSNKey events.NATSNKey
	// StreamReplicas is how many NATS servers keep a copy of the JetStream streams and
	// buckets this service creates (NATS_STREAM_REPLICAS: 1 on one server, 3 on a 3-node
	// cluster; every service must be given the same value).
	StreamReplicas int `envconfig:"NATS_STREAM_REPLICAS" default:"1"`

	// HFToken enables HuggingFace models; never logged.
	HFToken   string   `envconfig:"HF_API_TOKEN"`
	HFBaseURL string   `envconfig:"HF_CHAT_BASE_URL" default:"https://router.huggingface.co/v1"`
	HFModel   string   `envconfig:"HF_CHAT_MODEL" default:"mistralai/Mistral-7B-Instruct-v0.3"`
	HFModels  []string `envconfig:"HF_CHAT_MODELS"`
	// MaxTokens is the answer length asked of every model.
	MaxTokens int `envconfig:"HF_API_MAX_TOKENS" default:"1024"`

	// OpenAIBaseURL enables an OpenAI-compatible server (Ollama, vLLM, llama.cpp, ...).
	OpenAIBaseURL string   `envconfig:"OPENAI_BASE_URL"`
	OpenAIKey     string   `envconfig:"OPENAI_API_KEY"`
	OpenAIModels  []string `envconfig:"OPENAI_MODELS"`

	// Concurrency is how many answers one worker writes at a time.
	Concurrency   int `envconfig:"INFERENCE_CONCURRENCY" default:"8"`
	MaxAckPending int `envconfig:"INFERENCE_MAX_ACK_PENDING" default:"256"`
	// RetryMaxWait bounds the time spent retrying one answer (429, 503, ...).
	RetryMaxWait time.Duration `envconfig:"INFERENCE_RETRY_MAX_WAIT" default:"2m"`
	// RetryBase is the first backoff step (doubling, with jitter, capped at 30 s).
	RetryBase time.Duration `envconfig:"INFERENCE_RETRY_BASE" default:"1s"`
	// ProviderTimeout bounds the wait for a provider to start answering;
	// IdleTimeout the silence between two chunks; MaxGeneration one whole call.
	ProviderTimeout time.Duration `envconfig:"INFERENCE_PROVIDER_TIMEOUT" default:"60s"`
	IdleTimeout     time.Duration `envconfig:"INFERENCE_IDLE_TIMEOUT" default:"60s"`
	MaxGeneration   time.Duration `envconfig:"INFERENCE_MAX_GENERATION" default:"10m"`
	// Coalesce is the shortest time between two delta events of an answer: the first
	// text of an attempt is published at once, later text at most once per window,
	// merged (0 disables it: every chunk is published).
	Coalesce time.Duration `envconfig:"INFERENCE_DELTA_COALESCE" default:"100ms"`
	// DemoWordDelay paces the offline demo model's words.
	DemoWordDelay time.Duration `envconfig:"INFERENCE_DEMO_WORD_DELAY" default:"20ms"`
	// Heartbeat is the InProgress interval while writing an answer.
	Heartbeat time.Duration `envconfig:"INFERENCE_HEARTBEAT" default:"10s"`
	// ShutdownTimeout bounds the clean stop.
	ShutdownTimeout time.Duration `envconfig:"INFERENCE_SHUTDOWN_TIMEOUT" default:"10s"`

	// MaxDeliver is how many deliveries of an event count before its answer is stored
	// failed; hand-backs (long provider waits, a model at its limit) do not count.
	MaxDeliver int `envconfig:"INFERENCE_MAX_DELIVER" default:"5"`
	// AckWait is how long a silent worker keeps an event before another one takes it.
	AckWait time.Duration `envconfig:"INFERENCE_ACK_WAIT" default:"30s"`
	// ParkAfter is the longest provider wait (429/503) a worker waits holding its slot;
	// a longer one hands the event back to JetStream with a `waiting` event.
	ParkAfter time.Duration `envconfig:"INFERENCE_PARK_AFTER" default:"3s"`
	// ModelConcurrency caps answers per model and worker:
	// "mistralai/Mistral-7B-Instruct-v0.3=4,default=8" (empty: no cap but Concurrency).
	ModelConcurrency string `envconfig:"INFERENCE_MODEL_CONCURRENCY"`
	// ModelBusyDelay is how long a job for a model at its cap waits in JetStream.
	ModelBusyDelay time.Duration `envconfig:"INFERENCE_MODEL_BUSY_DELAY" default:"1s"`
	// StrictRolesModels lists more models (ids or path.Match patterns) whose chat
	// template refuses a system role or non-alternating roles.
	StrictRolesModels []string `envconfig:"INFERENCE_STRICT_ROLES_MODELS"`
	// MetricsAddr serves /metrics, /healthz and /readyz (empty: off), e.g. ":9102".
	MetricsAddr string `envconfig:"INFERENCE_METRICS_ADDR"`

	// OllamaURL is where a local Ollama is looked for when OPENAI_BASE_URL is empty;
	// empty (also the zero value of a literal) turns the search off. Its models get
	// OllamaContextLength, and it is probed every OllamaProbeInterval (ollama.go).
	OllamaURL           string        `envconfig:"OLLAMA_URL" default:"http://127.0.0.1:11434"`
	OllamaContextLength int           `envconfig:"OLLAMA_CONTEXT_LENGTH" default:"4096"`
	OllamaProbeInterval time.Duration `envconfig:"OLLAMA_PROBE_INTERVAL" default:"30s"`
}

// Deps are the service's dependencies.
type Deps struct {
	Logger *slog.Logger
	// Registry receives the worker's metrics (a new registry when nil; never the
	// default one).
	Registry *prometheus.Registry
	// MetricsListener, when set, serves /metrics, /healthz and /readyz on it instead
	// of on MetricsAddr.
	MetricsListener net.Listener
}

func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.NATSURL == "" {
		c.NATSURL = "nats://127.0.0.1:4222"
	}
	if c.HFBaseURL == "" {
		c.HFBaseURL = DefaultHFBaseURL
	}
	if c.HFModel == "" {
		c.HFModel = DefaultHFModel
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 1024
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 256
	}
	set(&c.AckWait, 30*time.Second)
	set(&c.RetryMaxWait, 2*time.Minute)
	set(&c.RetryBase, time.Second)
	set(&c.ProviderTimeout, 60*time.Second)
	set(&c.IdleTimeout, 60*time.Second)
	set(&c.MaxGeneration, 10*time.Minute)
	if c.Heartbeat <= 0 {
		c.Heartbeat = min(10*time.Second, c.AckWait/3)
	}
	set(&c.ShutdownTimeout, 10*time.Second)
	set(&c.ModelBusyDelay, time.Second)
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 5
	}
	if c.ParkAfter < 0 {
		c.ParkAfter = 0
	} else if c.ParkAfter == 0 {
		c.ParkAfter = 3 * time.Second
	}
	if c.Heartbeat >= c.AckWait {
		c.Heartbeat = c.AckWait / 3
	}
	return c
}

// Run runs a worker until ctx is done. It returns nil on a clean stop.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	cfg = cfg.withDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Records logged with a context carry its request id.
	log = events.WithRequestIDLogging(log).With("service", "inference")
	limits, err := transport.ParseModelLimits(cfg.ModelConcurrency)
	if err != nil {
		return fmt.Errorf("INFERENCE_MODEL_CONCURRENCY: %w", err)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	metrics := transport.NewMetrics(reg)

	cat, discover := buildCatalog(cfg, log)
	ollama := newOllamaDiscovery(cfg, cat, log) // nil unless a local Ollama may serve models
	ollama.probe(ctx)
	for _, m := range cat.Models() {
		log.Info("model available", "model", m.ID, "provider", m.Provider, "default", m.Default, "context_length", m.ContextLength)
	}

	natsOpts, err := events.NATSOptions(cfg.NATSTLS, cfg.NATSNKey)
	if err != nil {
		return err
	}
	nc, err := events.Connect(cfg.NATSURL, "inference", log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	svc, err := transport.AddModelsService(nc, cat, log)
	if err != nil {
		return err
	}

	var ready atomic.Bool
	worker := &transport.Worker{
		NC: nc, JS: js, Log: log, StreamReplicas: cfg.StreamReplicas,
		Answerer: &app.Answerer{
			Catalog: cat, MaxTokens: cfg.MaxTokens, RetryMaxWait: cfg.RetryMaxWait,
			RetryBase: cfg.RetryBase, RetryCap: 30 * time.Second, ParkAfter: cfg.ParkAfter, Log: log,
			Observer: metrics,
		},
		Concurrency: cfg.Concurrency, MaxAckPending: cfg.MaxAckPending, Coalesce: cfg.Coalesce,
		Heartbeat: cfg.Heartbeat, AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver,
		Limits: limits, ModelBusyDelay: cfg.ModelBusyDelay, Metrics: metrics,
		Ready: func() { ready.Store(true) },
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return worker.Run(gctx) })
	g.Go(func() error { discover(gctx); return nil })
	g.Go(func() error { ollama.run(gctx); return nil })
	g.Go(func() error { return transport.ServeTitles(gctx, svc, &app.TitleWriter{Catalog: cat}, log) })
	if deps.MetricsListener != nil || cfg.MetricsAddr != "" {
		health := func() error {
			if !nc.IsConnected() {
				return errors.New("not connected to NATS")
			}
			if !ready.Load() {
				return errors.New("consumer not set up yet")
			}
			return nil
		}
		g.Go(func() error {
			return serveMetrics(gctx, cfg.MetricsAddr, deps.MetricsListener, reg, health, cfg.ShutdownTimeout, log)
		})
	}
	runErr := g.Wait()

	// The worker has stopped pulling and handed back what was in flight.
	var errs []error
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		errs = append(errs, runErr)
	}
	if err := svc.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stop micro service: %w", err))
	}
	if err := drain(nc, cfg.ShutdownTimeout); err != nil {
		errs = append(errs, err)
	}
	log.Info("inference stopped")
	return errors.Join(errs...)
}

// drain flushes and closes nc. A connection that is reconnecting (NATS unreachable) or
// already closed has nothing that could still be delivered: it is closed, and that is a
// clean stop.
func drain(nc interface {
	Drain() error
	Close()
	IsClosed() bool
}, timeout time.Duration) error {
	if err := nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionClosed) {
			nc.Close()
			return nil
		}
		return fmt.Errorf("drain nats: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// buildCatalog assembles the models from the configuration: HuggingFace models when a
// token is set, an OpenAI-compatible server's models when its URL is set, else the
// offline demo model. The returned function refines the catalog from the providers'
// metadata (context windows, discovered models) until ctx is done.
func buildCatalog(cfg Config, log *slog.Logger) (*app.Catalog, func(context.Context)) {
	strict := app.NewStrictRoles(cfg.StrictRolesModels)
	newEntry := func(id, name, providerName string, contextLength int, p app.Provider) app.Entry {
		e := app.NewEntry(id, name, providerName, contextLength, p)
		e.StrictRoles = e.StrictRoles || strict.Match(id)
		return e
	}
	var entries []app.Entry
	var hf, oa *provider.Client
	if cfg.HFToken != "" {
		hf = provider.New(provider.Options{
			Name: "HuggingFace", BaseURL: cfg.HFBaseURL, Token: cfg.HFToken,
			TokenVar: "HF_API_TOKEN", BaseURLVar: "HF_CHAT_BASE_URL",
			FirstByteTimeout: cfg.ProviderTimeout, IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxGeneration, Log: log,
			MaxIdleConnsPerHost: cfg.Concurrency,
		})
		for _, id := range hfModels(cfg) {
			entries = append(entries, newEntry(id, path.Base(id), events.ProviderHuggingFace, 0, hf))
		}
	}
	oaProvider := events.ProviderOpenAI
	if cfg.OpenAIBaseURL != "" {
		if u, err := url.Parse(cfg.OpenAIBaseURL); err == nil && u.Port() == "11434" {
			oaProvider = events.ProviderOllama
		}
		oa = provider.New(provider.Options{
			Name: "The OpenAI-compatible server", BaseURL: cfg.OpenAIBaseURL, Token: cfg.OpenAIKey,
			TokenVar: "OPENAI_API_KEY", BaseURLVar: "OPENAI_BASE_URL",
			FirstByteTimeout: cfg.ProviderTimeout, IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxGeneration, Log: log,
			MaxIdleConnsPerHost: cfg.Concurrency,
		})
		for _, id := range clean(cfg.OpenAIModels) {
			entries = append(entries, newEntry(id, id, oaProvider, 0, oa))
		}
	}
	if hf == nil && oa == nil {
		demo := newEntry(app.DemoModelID, provider.DemoName, events.ProviderDemo, 32768, provider.Demo{WordDelay: cfg.DemoWordDelay})
		entries = append(entries, demo)
		log.Warn("no model configured (HF_API_TOKEN and OPENAI_BASE_URL are empty): serving the offline demo model")
	}
	cat := app.NewCatalog(entries...)
	discover := func(ctx context.Context) {
		if hf != nil {
			for _, id := range hfModels(cfg) {
				n, err := hf.ContextLength(ctx, id)
				if err != nil || n == 0 {
					log.Info("context length from the built-in table", "model", id, "reason", errString(err))
					continue
				}
				cat.SetContextLength(id, n)
			}
		}
		if oa == nil {
			return
		}
		configured := clean(cfg.OpenAIModels)
		for delay := time.Duration(0); ; {
			sleepCtx(ctx, delay)
			if ctx.Err() != nil {
				return
			}
			list, err := oa.ListModels(ctx)
			if err != nil {
				log.Warn("list models of the OpenAI-compatible server", "err", err)
				delay = 30 * time.Second
				continue
			}
			if len(configured) > 0 {
				for _, m := range list {
					cat.SetContextLength(m.ID, m.ContextLength)
				}
			} else {
				found := make([]app.Entry, 0, len(list))
				for _, m := range list {
					found = append(found, newEntry(m.ID, m.ID, oaProvider, m.ContextLength, oa))
				}
				cat.ReplaceProvider(oaProvider, found)
				log.Info("models discovered", "count", len(found))
			}
			delay = 5 * time.Minute
		}
	}
	return cat, discover
}

// hfModels is HF_CHAT_MODELS (or the default list) with HF_CHAT_MODEL first.
func hfModels(cfg Config) []string {
	list := clean(cfg.HFModels)
	if len(list) == 0 {
		list = DefaultHFModels
	}
	return clean(append([]string{cfg.HFModel}, list...))
}

// clean trims, drops empties and duplicates, keeping the order.
func clean(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "not reported"
	}
	return err.Error()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
