package inference

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
	"github.com/parley-chat/parley/services/inference/internal/provider"
)

// Local Ollama discovery tuning.
const (
	// DefaultOllamaURL is where Ollama listens by default.
	DefaultOllamaURL = "http://127.0.0.1:11434"
	// DefaultOllamaContextLength is Ollama's own default context window (its
	// OLLAMA_CONTEXT_LENGTH); a longer prompt would be cut silently by Ollama.
	DefaultOllamaContextLength = 4096
	ollamaProbeTimeout         = 1500 * time.Millisecond
	// ollamaProbeEvery is the probe interval while no Ollama answered; ollamaRefreshEvery
	// the interval at which a found Ollama's model list is refreshed.
	ollamaProbeEvery   = 30 * time.Second
	ollamaRefreshEvery = 2 * time.Minute
)

// ollamaDiscovery offers the models of a local Ollama when no OpenAI-compatible
// server is configured: it probes {OLLAMA_URL}/v1/models at start and periodically,
// and once Ollama answers with at least one model, its models (provider "ollama")
// replace the offline demo model. A nil *ollamaDiscovery does nothing.
type ollamaDiscovery struct {
	cat    *app.Catalog
	client *provider.Client
	ctxLen int
	log    *slog.Logger
	url    string
	found  bool
	failed bool
	// every is the current interval: probeEvery until Ollama is found.
	every, probeEvery time.Duration
}

// newOllamaDiscovery returns nil when discovery is off: OPENAI_BASE_URL is set (that
// server is the one to use) or OLLAMA_URL is empty.
func newOllamaDiscovery(cfg Config, cat *app.Catalog, log *slog.Logger) *ollamaDiscovery {
	base := strings.TrimRight(strings.TrimSpace(cfg.OllamaURL), "/")
	if cfg.OpenAIBaseURL != "" || base == "" {
		return nil
	}
	if !strings.HasSuffix(base, "/v1") {
		base += "/v1"
	}
	ctxLen := cfg.OllamaContextLength
	if ctxLen <= 0 {
		ctxLen = DefaultOllamaContextLength
	}
	client := provider.New(provider.Options{
		Name: "Ollama", BaseURL: base, BaseURLVar: "OLLAMA_URL",
		FirstByteTimeout: cfg.ProviderTimeout, IdleTimeout: cfg.IdleTimeout, MaxDuration: cfg.MaxGeneration, Log: log,
		MaxIdleConnsPerHost: cfg.Concurrency,
	})
	every := cfg.OllamaProbeInterval
	if every <= 0 {
		every = ollamaProbeEvery
	}
	return &ollamaDiscovery{cat: cat, client: client, ctxLen: ctxLen, log: log, url: base, every: every, probeEvery: every}
}

// probe asks Ollama for its models once and updates the catalog.
func (d *ollamaDiscovery) probe(ctx context.Context) {
	if d == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, ollamaProbeTimeout)
	list, err := d.client.ListModels(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		if d.found && !d.failed {
			d.log.Warn("local Ollama stopped answering; keeping its models", "url", d.url, "err", err)
		} else if !d.found && !d.failed {
			d.log.Info("no local Ollama found", "url", d.url, "reason", err.Error())
		}
		d.failed = true
		return
	}
	d.failed = false
	entries := make([]app.Entry, 0, len(list))
	for _, m := range list {
		n := d.ctxLen
		if m.ContextLength > 0 && m.ContextLength < n {
			n = m.ContextLength
		}
		entries = append(entries, app.NewEntry(m.ID, strings.TrimSuffix(m.ID, ":latest"), events.ProviderOllama, n, d.client))
	}
	if len(entries) == 0 {
		if !d.found {
			d.log.Warn("local Ollama has no models; pull one (ollama pull mistral) to use it", "url", d.url)
		}
		return
	}
	d.cat.ReplaceProvider(events.ProviderOllama, entries)
	d.cat.ReplaceProvider(events.ProviderDemo, nil)
	if !d.found {
		d.log.Info("local Ollama found", "url", d.url, "models", len(entries))
	}
	d.found, d.every = true, max(ollamaRefreshEvery, d.probeEvery)
}

// run probes until ctx is done.
func (d *ollamaDiscovery) run(ctx context.Context) {
	if d == nil {
		return
	}
	for {
		sleepCtx(ctx, d.every)
		if ctx.Err() != nil {
			return
		}
		d.probe(ctx)
	}
}
