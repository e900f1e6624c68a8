package fakehf

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

type generation struct {
	s      *Server
	w      *statusWriter
	r      *http.Request
	rec    *Request
	req    ChatRequest
	model  string
	tokens []string
	finish string
	prompt int
	step   Step
}

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type choiceJSON struct {
	Index        int            `json:"index"`
	Delta        map[string]any `json:"delta,omitempty"`
	Message      map[string]any `json:"message,omitempty"`
	Logprobs     any            `json:"logprobs"`
	FinishReason *string        `json:"finish_reason"`
}

type chunkJSON struct {
	Object            string       `json:"object"`
	ID                string       `json:"id"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []choiceJSON `json:"choices"`
	Usage             *usageJSON   `json:"usage"`
	TimeInfo          any          `json:"time_info,omitempty"`
}

func (g *generation) usage(completion int) *usageJSON {
	return &usageJSON{PromptTokens: g.prompt, CompletionTokens: completion, TotalTokens: g.prompt + completion}
}

func (g *generation) chunk(choices []choiceJSON, usage *usageJSON) string {
	c := chunkJSON{
		Object: "chat.completion.chunk", ID: "", Created: g.s.opts.Created, Model: g.model,
		SystemFingerprint: "3.3.4-native", Choices: choices, Usage: usage,
	}
	if g.s.opts.ExtraFields {
		c.TimeInfo = map[string]float64{"queue_time": 0.0001, "total_time": 0.01}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// complete answers a non-streaming request.
func (g *generation) complete() {
	if g.wait(g.s.opts.FirstTokenDelay) != nil {
		return
	}
	text := ""
	for _, t := range g.tokens {
		text += t
	}
	finish := g.finish
	resp := struct {
		Object            string       `json:"object"`
		ID                string       `json:"id"`
		Created           int64        `json:"created"`
		Model             string       `json:"model"`
		SystemFingerprint string       `json:"system_fingerprint"`
		Choices           []choiceJSON `json:"choices"`
		Usage             *usageJSON   `json:"usage"`
		TimeInfo          any          `json:"time_info,omitempty"`
	}{
		Object: "chat.completion", Created: g.s.opts.Created, Model: g.model, SystemFingerprint: "3.3.4-native",
		Choices: []choiceJSON{{Message: map[string]any{"role": "assistant", "content": text}, FinishReason: &finish}},
		Usage:   g.usage(len(g.tokens)),
	}
	if g.s.opts.ExtraFields {
		resp.TimeInfo = map[string]float64{"total_time": 0.01}
	}
	b, _ := json.Marshal(resp)
	writeJSON(g.w, http.StatusOK, string(b))
}

// wait sleeps d, writing keep-alive comments every KeepAlive if streaming headers are
// out; it fails when the client goes away.
func (g *generation) wait(d time.Duration) error {
	if d <= 0 {
		if g.r.Context().Err() != nil {
			return g.gone()
		}
		return nil
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var tick <-chan time.Time
	if g.s.opts.KeepAlive > 0 && g.w.status != 0 {
		t := time.NewTicker(g.s.opts.KeepAlive)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-g.r.Context().Done():
			return g.gone()
		case <-deadline.C:
			return nil
		case <-tick:
			if err := g.write(g.s.opts.KeepAliveComment + "\n\n"); err != nil {
				return err
			}
		}
	}
}

func (g *generation) write(s string) error {
	if g.r.Context().Err() != nil {
		return g.gone()
	}
	if _, err := io.WriteString(g.w, s); err != nil {
		return g.gone()
	}
	g.w.Flush()
	return nil
}

// gone records that the client went away before the answer was finished.
func (g *generation) gone() error {
	g.s.update(func() { g.rec.Cancelled = true })
	return errGone
}

func (g *generation) data(payload string) error {
	prefix := "data: "
	if g.s.opts.Framing == FramingTGI {
		prefix = "data:"
	}
	return g.write(prefix + payload + "\n\n")
}

// abort cuts the connection without finishing the chunked body.
func abort() { panic(http.ErrAbortHandler) }

// stream answers a streaming request chunk by chunk.
func (g *generation) stream() {
	h := g.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	g.w.WriteHeader(http.StatusOK)
	g.w.Flush()
	opts := g.s.opts
	includeUsage := g.req.StreamOptions != nil && g.req.StreamOptions.IncludeUsage
	role := map[string]any{"role": "assistant"}
	if opts.RoleOnlyFirstChunk {
		if g.data(g.chunk([]choiceJSON{{Delta: map[string]any{"role": "assistant", "content": ""}}}, g.cumulative(0))) != nil {
			return
		}
	}
	if g.wait(opts.FirstTokenDelay) != nil {
		return
	}
	n := len(g.tokens)
	for i, tok := range g.tokens {
		if g.step.Fault != FaultNone && g.step.Fault != FaultNoDone && i == g.step.After {
			g.fault(i)
			return
		}
		if i > 0 && g.wait(opts.TokenDelay) != nil {
			return
		}
		delta := map[string]any{"content": tok}
		if i == 0 && !opts.RoleOnlyFirstChunk {
			delta["role"] = role["role"]
		}
		ch := choiceJSON{Delta: delta}
		usage := g.cumulative(i + 1)
		if i == n-1 && !opts.SeparateFinishChunk {
			f := g.finish
			ch.FinishReason = &f
			if opts.Usage == UsageInFinish {
				usage = g.usage(n)
			}
		}
		if g.data(g.chunk([]choiceJSON{ch}, usage)) != nil {
			return
		}
	}
	if g.step.Fault != FaultNone && g.step.Fault != FaultNoDone && g.step.After >= n {
		g.fault(n)
		return
	}
	if opts.SeparateFinishChunk || n == 0 {
		f := g.finish
		usage := g.cumulative(n)
		if opts.Usage == UsageInFinish {
			usage = g.usage(n)
		}
		if g.data(g.chunk([]choiceJSON{{Delta: map[string]any{"content": ""}, FinishReason: &f}}, usage)) != nil {
			return
		}
	}
	if includeUsage && opts.Usage == UsageOnRequest {
		if g.data(g.chunk([]choiceJSON{}, g.usage(n))) != nil {
			return
		}
	}
	if g.step.Fault == FaultNoDone {
		return
	}
	_ = g.data("[DONE]")
}

// cumulative is the usage carried by a content chunk: the running total in
// UsageCumulative mode, null otherwise.
func (g *generation) cumulative(done int) *usageJSON {
	if g.s.opts.Usage == UsageCumulative {
		return g.usage(done)
	}
	return nil
}

func (g *generation) fault(i int) {
	switch g.step.Fault {
	case FaultMidStreamError:
		if g.data(g.step.StreamError) != nil {
			return
		}
		_ = g.data("[DONE]")
	case FaultDrop:
		abort()
	case FaultCutJSON:
		full := g.chunk([]choiceJSON{{Delta: map[string]any{"content": "cut"}}}, nil)
		_ = g.write("data: " + full[:len(full)/2])
		abort()
	case FaultStall:
		<-g.r.Context().Done()
		_ = g.gone()
	}
}
