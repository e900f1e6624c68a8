// Package conversations_test proves the conversations issue end to end, through the
// gateway's HTTP API of the whole product running in one process (real NATS, real
// MariaDB, fake model servers): chat history (cursor pages, full-text search, rename,
// delete, export), generated titles pushed as chat.updated, model selection (HF
// models, an OpenAI-compatible server, a local Ollama, the demo model), per-answer
// model and usage, context-window trimming and per-chat system prompts.
package conversations_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// Models of the main stack's fake HuggingFace router.
const (
	modelDefault = e2e.Model                              // HF_CHAT_MODEL
	modelNemo    = "mistralai/Mistral-Nemo-Instruct-2407" // a second HF model
	modelTitles  = "mistralai/Mistral-Small-3.1-24B-Instruct-2503"
	modelTiny    = "parley-test/Tiny-Instruct" // a 1024-token context window
	tinyContext  = 1024
	// modelServer is served by the OpenAI-compatible server (OPENAI_BASE_URL).
	modelServer = "local/served-model"
)

// titleMarker starts the instruction inference sends when it asks for a title.
const titleMarker = "Write a short title"

// reply is the fake models' answer: a title for a title request, a fixed fact about
// France (so an answer holds words its question has not), else the default echo.
func reply(req fakehf.ChatRequest) string {
	last := req.LastUser()
	switch {
	case strings.HasPrefix(last, titleMarker):
		_, q, _ := strings.Cut(last, "User: ")
		q, _, _ = strings.Cut(q, "\n")
		words := strings.Fields(q)
		if len(words) > 3 {
			words = words[:3]
		}
		// A chatty model: a label, quotes and a final period, then more text.
		return "Title: \"About " + strings.Join(words, " ") + ".\"\nI hope this title helps!"
	case strings.Contains(last, "capital of France"):
		return "The capital is Paris, a lovely city."
	}
	return fakehf.DefaultReply(req)
}

// env is the running product with its fake model servers: hf (HF_CHAT_BASE_URL, our
// own, so that title requests can be scripted too) and server (OPENAI_BASE_URL).
type env struct {
	*e2e.Stack
	hf, server *fakehf.Server
}

// newStack runs the product with HF models (one with a tiny context window) and an
// OpenAI-compatible server whose models are discovered.
func newStack(t *testing.T) *env {
	t.Helper()
	models := append(fakehf.DefaultModels(), fakehf.Model{ID: modelTiny, ContextLength: tinyContext, Provider: "test"})
	hf := fakehf.New(fakehf.Options{Models: models, Reply: reply})
	t.Cleanup(hf.Close)
	server := fakehf.New(fakehf.Options{Models: []fakehf.Model{{ID: modelServer, ContextLength: 4096, Provider: "vllm"}}})
	t.Cleanup(server.Close)
	s := e2e.New(t, e2e.Options{
		Inference: func(_ int, cfg *inference.Config) {
			cfg.HFBaseURL, cfg.HFToken = hf.BaseURL(), hf.Token()
			cfg.HFModels = []string{modelDefault, modelNemo, modelTitles, modelTiny}
			cfg.OpenAIBaseURL, cfg.OpenAIKey = server.BaseURL(), server.Token()
		},
	})
	return &env{Stack: s, hf: hf, server: server}
}

// waitModels waits until GET /api/models satisfies ok (discovery runs in the
// background) and returns the list.
func waitModels(t *testing.T, c *e2e.Client, ok func([]events.Model) error) []events.Model {
	t.Helper()
	var got []events.Model
	e2e.Eventually(t, 20*time.Second, "models", func() error {
		var rep events.ModelsReply
		res, err := c.Do("GET", "/api/models", nil)
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			return fmt.Errorf("status %d: %s", res.Status, res.Body)
		}
		if err := json.Unmarshal(res.Body, &rep); err != nil {
			return err
		}
		got = rep.Models
		return ok(got)
	})
	return got
}

// createChat creates a chat with the given body and returns it.
func createChat(t *testing.T, c *e2e.Client, body map[string]any) events.Chat {
	t.Helper()
	var rep events.ChatReply
	c.WithT(t).Call("POST", "/api/chats", body, http.StatusCreated, &rep)
	return rep.Chat
}

// ask sends a message and waits for the answer's final event; it returns the stored
// answer.
func ask(t *testing.T, c *e2e.Client, chatID, content string) events.Message {
	t.Helper()
	c = c.WithT(t)
	sent := c.Send(chatID, content)
	a := e2e.Collect(t, c.Stream(sent.AssistantMessage.ID))
	if !a.HasEnd {
		t.Fatalf("answer to %q did not end", content)
	}
	return c.Message(chatID, sent.AssistantMessage.ID)
}

// getChat reads one chat.
func getChat(t *testing.T, c *e2e.Client, id string) events.Chat {
	t.Helper()
	var rep events.ChatReply
	c.WithT(t).Call("GET", "/api/chats/"+id, nil, http.StatusOK, &rep)
	return rep.Chat
}

// listAll pages through GET /api/chats with q and limit and returns the titles in
// order, checking that no chat comes twice.
func listAll(t *testing.T, c *e2e.Client, q string, limit int) []string {
	t.Helper()
	var titles []string
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("too many pages")
		}
		v := url.Values{"limit": {fmt.Sprint(limit)}}
		if q != "" {
			v.Set("q", q)
		}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		var rep events.ListChatsReply
		c.WithT(t).Call("GET", "/api/chats?"+v.Encode(), nil, http.StatusOK, &rep)
		if len(rep.Chats) > limit {
			t.Fatalf("page of %d chats, limit %d", len(rep.Chats), limit)
		}
		for i, ch := range rep.Chats {
			if seen[ch.ID] {
				t.Fatalf("chat %q listed twice", ch.Title)
			}
			seen[ch.ID] = true
			titles = append(titles, ch.Title)
			if i > 0 && rep.Chats[i-1].UpdatedAt.Before(ch.UpdatedAt) {
				t.Errorf("%q (%v) listed before the newer %q (%v)", rep.Chats[i-1].Title, rep.Chats[i-1].UpdatedAt, ch.Title, ch.UpdatedAt)
			}
		}
		if rep.NextCursor == "" {
			return titles
		}
		cursor = rep.NextCursor
	}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
