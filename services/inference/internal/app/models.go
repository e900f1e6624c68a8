package app

import (
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/parley-chat/parley/libs/events"
)

// DemoModelID is the id of the offline demo model.
const DemoModelID = "demo"

// DefaultContextLength is assumed for a model nothing is known about.
const DefaultContextLength = 8192

// knownContext holds the context windows of models we expect to serve, from their
// model cards (hf-protocol.md §4); the router's /v1/models/{id} overrides it.
var knownContext = map[string]int{
	"mistralai/Mistral-7B-Instruct-v0.1":            8192,
	"mistralai/Mistral-7B-Instruct-v0.2":            32768,
	"mistralai/Mistral-7B-Instruct-v0.3":            32768,
	"mistralai/Mistral-Nemo-Instruct-2407":          131072,
	"mistralai/Mistral-Small-24B-Instruct-2501":     32768,
	"mistralai/Mistral-Small-3.1-24B-Instruct-2503": 131072,
	"mistralai/Mixtral-8x7B-Instruct-v0.1":          32768,
	"mistralai/Magistral-Small-2506":                40960,
}

// KnownContextLength returns the built-in context window for a model id (a `:policy`
// or `:provider` suffix is ignored).
func KnownContextLength(id string) (int, bool) {
	base, _, _ := strings.Cut(id, ":")
	n, ok := knownContext[base]
	return n, ok
}

// strictPatterns match models whose chat template refuses a system role and
// non-alternating roles (Mistral 7B Instruct v0.1/v0.2 and Mixtral 8x7B Instruct v0.1,
// under their HuggingFace or Ollama-style names).
var strictPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)mistral[-:/_ ]?7b[-:_]instruct[-_]v0\.[12]\b`),
	regexp.MustCompile(`(?i)mixtral[-:/_ ]?8x7b[-:_]instruct[-_]v0\.1\b`),
}

func strictTemplate(id string) bool {
	for _, re := range strictPatterns {
		if re.MatchString(id) {
			return true
		}
	}
	return false
}

// StrictRoles decides which models get the strict-roles prompt (system prompt folded
// into the first user turn, roles alternating): the built-in patterns, plus extra model
// ids or path.Match patterns (INFERENCE_STRICT_ROLES_MODELS).
type StrictRoles struct {
	extra []string
}

// NewStrictRoles returns a matcher with extra ids or patterns ("org/*-v0.1").
func NewStrictRoles(extra []string) StrictRoles {
	var out []string
	for _, e := range extra {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return StrictRoles{extra: out}
}

// Match reports whether model id needs the strict-roles prompt.
func (s StrictRoles) Match(id string) bool {
	if strictTemplate(id) {
		return true
	}
	base, _, _ := strings.Cut(id, ":")
	for _, p := range s.extra {
		if p == id || p == base {
			return true
		}
		if ok, _ := path.Match(p, id); ok {
			return true
		}
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}

// Entry is one model a chat can use and how to reach it.
type Entry struct {
	Model events.Model
	// Upstream is the model id sent to the provider.
	Upstream string
	Provider Provider
	// StrictRoles folds the system prompt into the first user turn and keeps roles
	// alternating, for templates that refuse anything else.
	StrictRoles bool
}

// NewEntry builds a catalog entry, taking the context length from the built-in table
// when contextLength is 0.
func NewEntry(id, name, providerName string, contextLength int, p Provider) Entry {
	if contextLength <= 0 {
		if n, ok := KnownContextLength(id); ok {
			contextLength = n
		} else {
			contextLength = DefaultContextLength
		}
	}
	return Entry{
		Model:       events.Model{ID: id, Name: name, Provider: providerName, ContextLength: contextLength},
		Upstream:    id,
		Provider:    p,
		StrictRoles: strictTemplate(id),
	}
}

// Catalog is the set of models this worker serves, the default first. It is safe for
// concurrent use; discovery may update it while workers read it.
type Catalog struct {
	mu      sync.RWMutex
	entries []Entry
}

// NewCatalog returns a catalog of entries; the first one is the default. Duplicate ids
// keep their first entry.
func NewCatalog(entries ...Entry) *Catalog {
	c := &Catalog{}
	c.set(entries)
	return c
}

func (c *Catalog) set(entries []Entry) {
	seen := map[string]bool{}
	out := make([]Entry, 0, len(entries))
	for _, e := range entries {
		if e.Model.ID == "" || seen[e.Model.ID] {
			continue
		}
		seen[e.Model.ID] = true
		e.Model.Default = len(out) == 0
		out = append(out, e)
	}
	c.entries = out
}

// Models lists the models as clients see them, the default first.
func (c *Catalog) Models() []events.Model {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]events.Model, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e.Model)
	}
	return out
}

// Resolve finds the entry for a model id. A chat whose model is no longer configured
// is answered by the default model (ok is false then); found is false only when the
// catalog is empty.
func (c *Catalog) Resolve(id string) (e Entry, exact, found bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.entries {
		if e.Model.ID == id {
			return e, true, true
		}
	}
	if len(c.entries) == 0 {
		return Entry{}, false, false
	}
	return c.entries[0], false, true
}

// SetContextLength updates one model's context window (from the provider's metadata).
func (c *Catalog) SetContextLength(id string, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.entries {
		if c.entries[i].Model.ID == id {
			c.entries[i].Model.ContextLength = n
		}
	}
}

// ReplaceProvider swaps every entry of one provider name for entries, keeping the
// others (discovery of an OpenAI-compatible server's models). Entries of that provider
// go where the first old one was, or at the end.
func (c *Catalog) ReplaceProvider(providerName string, entries []Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Entry
	inserted := false
	for _, e := range c.entries {
		if e.Model.Provider == providerName {
			if !inserted {
				out = append(out, entries...)
				inserted = true
			}
			continue
		}
		out = append(out, e)
	}
	if !inserted {
		out = append(out, entries...)
	}
	c.set(out)
}
