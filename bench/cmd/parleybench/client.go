package main

import (
	"cmp"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/parley-chat/parley/bench/internal/sse"
)

// apiClient is one simulated user talking to the gateway's public API with a bearer
// token, exactly as an API client (or the web app, minus cookies) does.
type apiClient struct {
	base  string
	hc    *http.Client
	token string
}

// apiError is a non-2xx answer of the API.
type apiError struct {
	Op     string
	Status int
	Body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s", e.Op, e.Status, strings.TrimSpace(e.Body))
}

// do sends a JSON request and decodes a JSON answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Parley-CSRF", "1")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", op, err)
	}
	if res.StatusCode/100 != 2 {
		return &apiError{Op: op, Status: res.StatusCode, Body: string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return nil
}

func (c *apiClient) signup(ctx context.Context, username, password string) error {
	return c.do(ctx, "signup", http.MethodPost, "/api/auth/signup", map[string]string{
		"username": username, "email": username + "@bench.example.com", "password": password,
		"firstname": "Bench", "lastname": "User",
	}, nil)
}

func (c *apiClient) login(ctx context.Context, username, password string) error {
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.do(ctx, "login", http.MethodPost, "/api/auth/login",
		map[string]string{"username": username, "password": password}, &out); err != nil {
		return err
	}
	if out.AccessToken == "" {
		return errors.New("login: no access token")
	}
	c.token = out.AccessToken
	return nil
}

func (c *apiClient) newChat(ctx context.Context) (string, error) {
	var out struct {
		Chat struct {
			ID string `json:"id"`
		} `json:"chat"`
	}
	if err := c.do(ctx, "new chat", http.MethodPost, "/api/chats", map[string]string{}, &out); err != nil {
		return "", err
	}
	return out.Chat.ID, nil
}

// send posts a user message and returns the id of its pending answer.
func (c *apiClient) send(ctx context.Context, chatID, content string) (string, error) {
	var out struct {
		Assistant struct {
			ID string `json:"id"`
		} `json:"assistant_message"`
	}
	if err := c.do(ctx, "send", http.MethodPost, "/api/chats/"+chatID+"/messages",
		map[string]string{"content": content}, &out); err != nil {
		return "", err
	}
	return out.Assistant.ID, nil
}

func (c *apiClient) cancel(ctx context.Context, msgID string) error {
	err := c.do(ctx, "cancel", http.MethodPost, "/api/messages/"+msgID+"/cancel", nil, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		return nil // already finished
	}
	return err
}

// streamResult is what a client saw of one answer.
type streamResult struct {
	Opened, First, End time.Time
	Final              string // the final event's type: done or error
	Status, Content    string // the stored message of the final event
	Deltas             int
}

// stream reads an answer's event stream to its final event. opened, when not nil, is
// called once the response headers are in.
func (c *apiClient) stream(ctx context.Context, msgID string, opened func()) (streamResult, error) {
	var r streamResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/messages/"+msgID+"/stream", nil)
	if err != nil {
		return r, fmt.Errorf("stream: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.hc.Do(req)
	if err != nil {
		return r, fmt.Errorf("stream: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return r, &apiError{Op: "stream", Status: res.StatusCode, Body: string(b)}
	}
	r.Opened = time.Now()
	if opened != nil {
		opened()
	}
	rd := sse.NewReader(res.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			return r, fmt.Errorf("stream ended before its final event (%d deltas): %w", r.Deltas, err)
		}
		switch ev.Type {
		case "delta":
			if r.First.IsZero() {
				r.First = time.Now()
			}
			r.Deltas++
		case "reset":
			return r, errors.New("stream: reset (the generation restarted)")
		case "done", "error":
			r.End, r.Final = time.Now(), ev.Type
			var fin struct {
				Message struct {
					Status  string `json:"status"`
					Content string `json:"content"`
				} `json:"message"`
			}
			if err := json.Unmarshal(ev.Data, &fin); err != nil {
				return r, fmt.Errorf("stream: decode %s: %w", ev.Type, err)
			}
			r.Status, r.Content = fin.Message.Status, fin.Message.Content
			return r, nil
		}
	}
}

// watchChat holds the chat's live event stream (GET /api/chats/{id}/events, what the
// web app keeps open for the chat on screen) until ctx ends, counting the
// message.completed events it sees. opened is called once the headers are in. An
// event of another chat is an error.
func (c *apiClient) watchChat(ctx context.Context, chatID string, opened func(), completed func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/chats/"+chatID+"/events", nil)
	if err != nil {
		return fmt.Errorf("chat events: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("chat events: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return &apiError{Op: "chat events", Status: res.StatusCode, Body: string(b)}
	}
	opened()
	rd := sse.NewReader(res.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("chat events ended: %w", err)
		}
		var d struct {
			ChatID string `json:"chat_id"`
			Chat   struct {
				ID string `json:"id"`
			} `json:"chat"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("chat events: decode %s: %w", ev.Type, err)
		}
		if id := cmp.Or(d.ChatID, d.Chat.ID); id != chatID {
			return fmt.Errorf("chat events: %s event of chat %q on the stream of %q", ev.Type, id, chatID)
		}
		if ev.Type == "message.completed" {
			completed()
		}
	}
}

// providerResult is what a client sent straight to the provider saw.
type providerResult struct {
	First, End time.Time
	Content    strings.Builder
}

// provider streams one chat completion straight from the (fake) provider: the floor.
func provider(ctx context.Context, hc *http.Client, base, token, model, content string) (*providerResult, error) {
	body, _ := json.Marshal(map[string]any{
		"model": model, "stream": true, "max_tokens": 1024,
		"messages": []map[string]string{{"role": "user", "content": content}},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return nil, &apiError{Op: "provider", Status: res.StatusCode, Body: string(b)}
	}
	r := &providerResult{}
	rd := sse.NewReader(res.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			return r, fmt.Errorf("provider stream ended before [DONE]: %w", err)
		}
		if string(ev.Data) == "[DONE]" {
			r.End = time.Now()
			return r, nil
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(ev.Data, &chunk); err != nil {
			return r, fmt.Errorf("provider: decode chunk: %w", err)
		}
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			if r.First.IsZero() {
				r.First = time.Now()
			}
			r.Content.WriteString(chunk.Choices[0].Delta.Content)
		}
	}
}
