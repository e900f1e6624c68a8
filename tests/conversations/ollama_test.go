package conversations_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// fakeOllama speaks Ollama's OpenAI-compatible API: /v1/models as Ollama lists its
// models (no context window, no token needed) and /v1/chat/completions answered by a
// fake router. While down it refuses to answer, as a stopped Ollama would.
type fakeOllama struct {
	*httptest.Server
	hf    *fakehf.Server
	up    atomic.Bool
	calls atomic.Int64
}

var ollamaModels = []string{"llama3.2:latest", "mistral:7b-instruct"}

// routerName is an Ollama model name as the fake router can serve it.
func routerName(id string) string { return "ollama/" + strings.ReplaceAll(id, ":", "-") }

func newFakeOllama(t *testing.T) *fakeOllama {
	t.Helper()
	var fm []fakehf.Model
	for _, id := range ollamaModels {
		fm = append(fm, fakehf.Model{ID: routerName(id), ContextLength: 131072, Provider: "ollama"})
	}
	o := &fakeOllama{hf: fakehf.NewHandler(fakehf.Options{Models: fm, Reply: reply})}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.up.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		o.calls.Add(1)
		switch r.URL.Path {
		case "/v1/models":
			w.Header().Set("Content-Type", "application/json")
			body := `{"object":"list","data":[`
			for i, id := range ollamaModels {
				if i > 0 {
					body += ","
				}
				body += fmt.Sprintf(`{"id":%q,"object":"model","created":1760000000,"owned_by":"library"}`, id)
			}
			_, _ = w.Write([]byte(body + "]}"))
		case "/v1/chat/completions":
			if r.Header.Get("Authorization") != "" {
				http.Error(w, "unexpected token", http.StatusBadRequest)
				return
			}
			// The fake router wants a token, and reads "name:tag" as a model and a
			// provider: hand it a router-style name.
			r.Header.Set("Authorization", "Bearer "+fakehf.DefaultToken)
			var body map[string]any
			raw, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(raw, &body); err != nil {
				http.Error(w, "bad json", http.StatusBadRequest)
				return
			}
			if m, _ := body["model"].(string); m != "" {
				body["model"] = routerName(m)
			}
			raw, _ = json.Marshal(body)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
			o.hf.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// TestOllama: with no OpenAI-compatible server and no HuggingFace token, a local
// Ollama found later replaces the demo model; its models answer and write titles.
func TestOllama(t *testing.T) {
	o := newFakeOllama(t)
	s := e2e.New(t, e2e.Options{Inference: func(_ int, cfg *inference.Config) {
		cfg.HFToken = ""
		cfg.OllamaURL = o.URL
		cfg.OllamaProbeInterval = 200 * time.Millisecond
	}})
	ann := s.User("ollama_ann")

	// Nothing answers yet: the demo model only.
	models := waitModels(t, ann, func([]events.Model) error { return nil })
	if len(models) != 1 || models[0].ID != "demo" || models[0].Provider != events.ProviderDemo {
		t.Fatalf("models before Ollama runs: %+v", models)
	}

	o.up.Store(true)
	models = waitModels(t, ann, func(ms []events.Model) error {
		if len(ms) == 0 || ms[0].Provider != events.ProviderOllama {
			return fmt.Errorf("models %+v", ms)
		}
		return nil
	})
	type short struct {
		ID, Provider string
		Default      bool
		Context      int
	}
	var got []short
	for _, m := range models {
		got = append(got, short{m.ID, m.Provider, m.Default, m.ContextLength})
	}
	want := []short{
		{"llama3.2:latest", events.ProviderOllama, true, inference.DefaultOllamaContextLength},
		{"mistral:7b-instruct", events.ProviderOllama, false, inference.DefaultOllamaContextLength},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("models with Ollama (-want +got):\n%s", diff)
	}

	c := createChat(t, ann, map[string]any{"model": "mistral:7b-instruct"})
	es := ann.Open("/api/chats/" + c.ID + "/events")
	a := ask(t, ann, c.ID, "hello local llama")
	if a.Status != events.StatusComplete || a.Model != "mistral:7b-instruct" || a.Content != "You said: hello local llama (seen 1 messages)" {
		t.Errorf("answer %+v", a)
	}
	if got := waitTitleEvent(t, es, "hello local llama"); got.Title != "About hello local llama" {
		t.Errorf("title %q", got.Title)
	}
	if n := len(o.hf.ChatRequests()); n != 2 {
		t.Errorf("Ollama got %d chat requests, want 2 (answer, title)", n)
	}
}

// TestDemoModel: with nothing configured the offline demo model is the only model; it
// answers and writes no titles, so the first words stand.
func TestDemoModel(t *testing.T) {
	s := e2e.New(t, e2e.Options{Inference: func(_ int, cfg *inference.Config) {
		cfg.HFToken = ""
		cfg.DemoWordDelay = time.Millisecond
	}})
	ann := s.User("demo_ann")
	models := waitModels(t, ann, func([]events.Model) error { return nil })
	if len(models) != 1 || models[0].ID != "demo" || !models[0].Default {
		t.Fatalf("models: %+v", models)
	}
	c := createChat(t, ann, map[string]any{})
	a := ask(t, ann, c.ID, "Is anybody out there at all")
	if a.Status != events.StatusComplete || a.Model != "demo" || a.Usage == nil {
		t.Errorf("demo answer %+v", a)
	}
	e2e.Eventually(t, 10*time.Second, "title job done", func() error {
		if due, n := titleState(t, s.SQL, c.ID); due || n != 1 {
			return fmt.Errorf("due %v, attempts %d", due, n)
		}
		return nil
	})
	if got := getChat(t, ann, c.ID).Title; got != "Is anybody out there at all" {
		t.Errorf("title %q, want the first words", got)
	}
}
