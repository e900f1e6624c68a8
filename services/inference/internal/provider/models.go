package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RemoteModel is a model an OpenAI-compatible server lists.
type RemoteModel struct {
	ID string
	// ContextLength is 0 when the server does not say.
	ContextLength int
	OwnedBy       string
}

type modelJSON struct {
	ID            string `json:"id"`
	OwnedBy       string `json:"owned_by"`
	MaxModelLen   int    `json:"max_model_len"`  // vLLM
	ContextLength int    `json:"context_length"` // OpenRouter-style
	Meta          *struct {
		NCtxTrain int `json:"n_ctx_train"` // llama.cpp
	} `json:"meta"`
	Providers []struct {
		Status        string `json:"status"`
		ContextLength int    `json:"context_length"`
	} `json:"providers"` // HF router
}

// contextLength is the smallest context window the entry reports: a router model may
// be served by any live provider, so only the smallest is safe.
func (m modelJSON) contextLength() int {
	best := 0
	pick := func(n int) {
		if n > 0 && (best == 0 || n < best) {
			best = n
		}
	}
	live := false
	for _, p := range m.Providers {
		if p.Status == "" || p.Status == "live" {
			live = true
			pick(p.ContextLength)
		}
	}
	if !live {
		for _, p := range m.Providers {
			pick(p.ContextLength)
		}
	}
	if best == 0 {
		pick(m.MaxModelLen)
		pick(m.ContextLength)
		if m.Meta != nil {
			pick(m.Meta.NCtxTrain)
		}
	}
	return best
}

func (c *Client) get(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.o.BaseURL+path, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", path, err)
	}
	c.setHeaders(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %s", path, netReason(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLine))
	if err != nil {
		return fmt.Errorf("read %s: %s", path, netReason(err))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// ListModels lists the server's models (GET {base}/models).
func (c *Client) ListModels(ctx context.Context) ([]RemoteModel, error) {
	var list struct {
		Data []modelJSON `json:"data"`
	}
	if err := c.get(ctx, "/models", &list); err != nil {
		return nil, err
	}
	out := make([]RemoteModel, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID == "" {
			continue
		}
		out = append(out, RemoteModel{ID: m.ID, ContextLength: m.contextLength(), OwnedBy: m.OwnedBy})
	}
	return out, nil
}

// ContextLength asks the router for one model's context window
// (GET {base}/models/{org}/{name}); 0 when it does not say.
func (c *Client) ContextLength(ctx context.Context, id string) (int, error) {
	base, _, _ := strings.Cut(id, ":")
	parts := strings.Split(base, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	var body struct {
		Data *modelJSON `json:"data"`
		modelJSON
	}
	if err := c.get(ctx, "/models/"+strings.Join(parts, "/"), &body); err != nil {
		return 0, err
	}
	if body.Data != nil {
		return body.Data.contextLength(), nil
	}
	return body.modelJSON.contextLength(), nil
}
