// Package fakehf is a local stand-in for HuggingFace's OpenAI-compatible inference
// router (router.huggingface.co/v1), faithful to the wire protocol described in
// docs/hf-protocol.md: bearer-token checks, router-shaped model listings with
// providers[].context_length, streaming and non-streaming chat completions in OpenAI
// or raw TGI framing, and scripted failures (429/503 with retry hints, auth and
// validation errors, mid-stream errors, dropped connections, streams without [DONE]).
// It records every request and notices when a client goes away early.
//
// Tests use New (an httptest server); a standalone binary can mount the *Server as an
// http.Handler (NewHandler) on its own listener.
package fakehf

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds a recorded request body.
const maxBody = 16 << 20

// Server is a fake HF router. It is an http.Handler; New also starts it on a local port.
type Server struct {
	opts Options

	mu     sync.Mutex
	models []Model
	tokens map[string]bool
	script map[string][]Step
	reqs   []*Request
	nextID int
	ts     *httptest.Server
}

// New starts a fake on a random local port. Close it when done.
func New(opts Options) *Server {
	s := NewHandler(opts)
	s.ts = httptest.NewServer(s)
	return s
}

// NewHandler returns a fake that is not listening anywhere: serve it with your own
// http.Server (a standalone binary) or call ServeHTTP directly.
func NewHandler(opts Options) *Server {
	if len(opts.Tokens) == 0 {
		opts.Tokens = []string{DefaultToken}
	}
	if len(opts.Models) == 0 {
		opts.Models = DefaultModels()
	}
	if opts.KeepAliveComment == "" {
		opts.KeepAliveComment = ":"
	}
	if opts.Reply == nil {
		opts.Reply = DefaultReply
	}
	if opts.Created == 0 {
		opts.Created = 1760000000
	}
	s := &Server{opts: opts, tokens: map[string]bool{}, script: map[string][]Step{}}
	for _, t := range opts.Tokens {
		s.tokens[t] = true
	}
	s.models = append(s.models, opts.Models...)
	return s
}

// URL is the server's root URL ("" for a handler-only fake).
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// BaseURL is the OpenAI-compatible base URL (URL()+"/v1"), what HF_CHAT_BASE_URL takes.
func (s *Server) BaseURL() string { return s.URL() + "/v1" }

// Token returns an accepted bearer token.
func (s *Server) Token() string { return s.opts.Tokens[0] }

// Close stops the server (it cuts open streams first).
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// Enqueue scripts the next answers for model (a model id without suffix; "" = any
// model). Scripted steps are used first-in first-out, model-specific ones before "".
func (s *Server) Enqueue(model string, steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script[model] = append(s.script[model], steps...)
}

// SetModel adds a model or replaces the one with the same ID.
func (s *Server) SetModel(m Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.models {
		if s.models[i].ID == m.ID {
			s.models[i] = m
			return
		}
	}
	s.models = append(s.models, m)
}

// Requests returns a copy of every recorded request, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.reqs))
	for _, r := range s.reqs {
		c := *r
		c.Header = r.Header.Clone()
		out = append(out, c)
	}
	return out
}

// ChatRequests returns the recorded chat-completion requests, oldest first.
func (s *Server) ChatRequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Chat != nil {
			out = append(out, r)
		}
	}
	return out
}

// Reset forgets recorded requests and scripted steps.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
	s.script = map[string][]Step{}
}

func (s *Server) record(r *http.Request, body []byte) (*Request, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	rec := &Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Raw: body}
	s.reqs = append(s.reqs, rec)
	return rec, "fakehf-" + strconv.Itoa(s.nextID)
}

func (s *Server) update(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// lookup finds a model by id, ignoring a `:policy` or `:provider` suffix.
func (s *Server) lookup(id string) (Model, bool) {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[:i]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.models {
		if m.ID == id {
			return m, true
		}
	}
	return Model{}, false
}

// nextStep pops the scripted step for a request: the per-request choice (header or
// marker) first, then the model's queue, the any-model queue, the model's Always.
func (s *Server) nextStep(r *http.Request, req ChatRequest, m Model) Step {
	if name := r.Header.Get("X-Fakehf-Step"); name != "" {
		if st, ok := Preset(name); ok {
			return st
		}
	}
	if name, ok := marker(req.LastUser()); ok {
		if st, ok := Preset(name); ok {
			return st
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range []string{m.ID, ""} {
		if q := s.script[key]; len(q) > 0 {
			s.script[key] = q[1:]
			return q[0]
		}
	}
	if m.Always != nil {
		return *m.Always
	}
	return Step{}
}

func marker(text string) (string, bool) {
	const open = "[fakehf:"
	i := strings.Index(text, open)
	if i < 0 {
		return "", false
	}
	rest := text[i+len(open):]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	rec, reqID := s.record(r, body)
	w.Header().Set("X-Request-Id", reqID)
	rw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.update(func() {
			rec.Status = rw.status
			rec.Finished = true
			rec.End = time.Now()
		})
	}()
	path := r.URL.Path
	switch {
	case path == "/health":
		writeJSON(rw, http.StatusOK, `{"status":"ok"}`)
	case path == "/v1/chat/completions" && r.Method == http.MethodPost:
		s.chat(rw, r, rec, body)
	case path == "/v1/models" && r.Method == http.MethodGet:
		s.listModels(rw)
	case strings.HasPrefix(path, "/v1/models/") && r.Method == http.MethodGet:
		s.getModel(rw, strings.TrimPrefix(path, "/v1/models/"))
	case strings.HasPrefix(path, "/models/"):
		writeJSON(rw, http.StatusGone, BodyLegacyGone)
	default:
		rw.Header().Set("Content-Type", "text/plain")
		rw.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(rw, "Not Found")
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	if w.Header().Get("Content-Type") == "" {
		ct := "application/json; charset=utf-8"
		if strings.HasPrefix(strings.TrimSpace(body), "<") {
			ct = "text/html"
		}
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (s *Server) writeStep(w http.ResponseWriter, st Step) {
	for k, vs := range st.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	writeJSON(w, st.Status, st.Body)
}

type modelEntry struct {
	ID           string          `json:"id"`
	Object       string          `json:"object"`
	Created      int64           `json:"created"`
	OwnedBy      string          `json:"owned_by"`
	Architecture map[string]any  `json:"architecture"`
	Providers    []providerEntry `json:"providers"`
}

type providerEntry struct {
	Provider                 string             `json:"provider"`
	Status                   string             `json:"status"`
	ContextLength            int                `json:"context_length,omitempty"`
	Pricing                  map[string]float64 `json:"pricing"`
	SupportsTools            bool               `json:"supports_tools"`
	SupportsStructuredOutput bool               `json:"supports_structured_output"`
	IsModelAuthor            bool               `json:"is_model_author"`
}

func (s *Server) entry(m Model) modelEntry {
	owner, _, _ := strings.Cut(m.ID, "/")
	provider := m.Provider
	if provider == "" {
		provider = "fake-provider"
	}
	return modelEntry{
		ID: m.ID, Object: "model", Created: s.opts.Created, OwnedBy: owner,
		Architecture: map[string]any{"input_modalities": []string{"text"}, "output_modalities": []string{"text"}},
		Providers: []providerEntry{{
			Provider: provider, Status: "live", ContextLength: m.ContextLength,
			Pricing: map[string]float64{"input": 0.1, "output": 0.1},
		}},
	}
}

func (s *Server) listModels(w http.ResponseWriter) {
	s.mu.Lock()
	models := append([]Model(nil), s.models...)
	s.mu.Unlock()
	list := struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{Object: "list", Data: []modelEntry{}}
	for _, m := range models {
		list.Data = append(list.Data, s.entry(m))
	}
	b, _ := json.Marshal(list)
	writeJSON(w, http.StatusOK, string(b))
}

func (s *Server) getModel(w http.ResponseWriter, id string) {
	m, ok := s.lookup(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, `{"error":"Model not found"}`)
		return
	}
	b, _ := json.Marshal(struct {
		Data modelEntry `json:"data"`
	}{s.entry(m)})
	writeJSON(w, http.StatusOK, string(b))
}

func (s *Server) checkAuth(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	token, isBearer := strings.CutPrefix(h, "Bearer ")
	if !isBearer || strings.TrimSpace(token) == "" {
		s.writeStep(w, Step{Status: http.StatusUnauthorized, Body: BodyNoAuth, Header: authHeader()})
		return false
	}
	if !s.tokens[token] {
		writeJSON(w, http.StatusUnauthorized, BodyBadCredentials)
		return false
	}
	return true
}

func (s *Server) chat(w *statusWriter, r *http.Request, rec *Request, body []byte) {
	if !s.checkAuth(w, r) {
		return
	}
	var req ChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity,
			`{"error":"Failed to deserialize the JSON body into the target type: `+jsonEscape(err.Error())+`","error_type":"validation"}`)
		return
	}
	s.update(func() { rec.Chat = &req })
	m, ok := s.lookup(req.Model)
	if !ok {
		writeJSON(w, http.StatusBadRequest, modelNotSupportedBody(req.Model))
		return
	}
	provider := m.Provider
	if provider == "" {
		provider = "fake-provider"
	}
	w.Header().Set("X-Inference-Provider", provider)
	st := s.nextStep(r, req, m)
	if st.Delay > 0 && sleep(r, st.Delay) != nil {
		s.update(func() { rec.Cancelled = true })
		return
	}
	if st.Status >= 400 {
		s.writeStep(w, st)
		return
	}
	if s.opts.StrictRoles {
		for i, msg := range req.Messages {
			if (msg.Role == "user") != (i%2 == 0) {
				writeJSON(w, http.StatusUnprocessableEntity,
					`{"error":"Template error: Conversation roles must alternate user/assistant/user/assistant/...","error_type":"template_error"}`)
				return
			}
		}
	}
	prompt := promptTokens(req.Messages)
	maxNew := 0
	if req.MaxTokens != nil {
		maxNew = *req.MaxTokens
	}
	if m.ContextLength > 0 && prompt+maxNew > m.ContextLength {
		if s.opts.ContextErrorTGI {
			writeJSON(w, http.StatusUnprocessableEntity, tgiContextBody(m.ContextLength, prompt, maxNew))
		} else {
			writeJSON(w, http.StatusBadRequest, contextBody(m.ContextLength, prompt+maxNew, prompt, maxNew))
		}
		return
	}
	text := st.Reply
	if text == "" {
		text = s.opts.Reply(req)
	}
	finish := "stop"
	for _, stop := range req.Stop {
		if stop == "" {
			continue
		}
		if i := strings.Index(text, stop); i >= 0 {
			text = text[:i]
			if s.opts.Framing == FramingTGI {
				finish = "stop_sequence"
			}
		}
	}
	tokens := splitTokens(text)
	if req.MaxTokens != nil && len(tokens) > *req.MaxTokens {
		tokens = tokens[:*req.MaxTokens]
		finish = "length"
	}
	model := req.Model
	if s.opts.ResponseModel != "" {
		model = s.opts.ResponseModel
	}
	g := &generation{s: s, w: w, r: r, rec: rec, req: req, model: model, tokens: tokens, finish: finish, prompt: prompt, step: st}
	if req.Stream {
		g.stream()
	} else {
		g.complete()
	}
}

// promptTokens estimates prompt tokens at 4 bytes a token plus 4 per message: less
// than a conservative client estimate, so that a client that trims correctly fits.
func promptTokens(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += (len(m.Content)+3)/4 + 4
	}
	return n
}

// splitTokens cuts text into word tokens, each carrying its leading whitespace, so the
// concatenation of the tokens is the text.
func splitTokens(text string) []string {
	var out []string
	start := 0
	for i := 1; i < len(text); i++ {
		if (text[i] == ' ' || text[i] == '\n') && text[i-1] != ' ' && text[i-1] != '\n' {
			out = append(out, text[start:i])
			start = i
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

func sleep(r *http.Request, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return r.Context().Err()
	case <-t.C:
		return nil
	}
}

var errGone = errors.New("client went away")
