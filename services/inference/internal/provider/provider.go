// Package provider speaks the OpenAI-compatible chat completions API (HuggingFace's
// router, vLLM, TGI, Ollama, llama.cpp) over net/http with streaming, and maps every
// failure to an app.ProviderError with a stable code and a readable message. It also
// holds the offline demo model.
package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// maxLine bounds one SSE line; maxErrorBody bounds an error body we read.
const (
	maxLine      = 4 << 20
	maxErrorBody = 64 << 10
)

// Options configure a Client.
type Options struct {
	// Name is how messages name the provider ("HuggingFace").
	Name    string
	BaseURL string
	Token   string
	// TokenVar and BaseURLVar name the settings a message tells the operator to check.
	TokenVar   string
	BaseURLVar string
	// FirstByteTimeout bounds the wait for the answer to start; IdleTimeout the gap
	// between two lines of a stream; MaxDuration a whole call.
	FirstByteTimeout time.Duration
	IdleTimeout      time.Duration
	MaxDuration      time.Duration
	// Transport is the HTTP transport (a default one with connect timeouts when nil).
	Transport http.RoundTripper
	// MaxIdleConnsPerHost is how many idle connections the default transport keeps
	// per host (at least 32): set it to the number of calls made at once, or every
	// call beyond it dials (and, over HTTPS, handshakes) a new connection.
	MaxIdleConnsPerHost int
	Log                 *slog.Logger
}

// Client is an OpenAI-compatible chat client.
type Client struct {
	o    Options
	http *http.Client
}

// New returns a client.
func New(o Options) *Client {
	if o.Name == "" {
		o.Name = "The model provider"
	}
	if o.FirstByteTimeout <= 0 {
		o.FirstByteTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          max(100, o.MaxIdleConnsPerHost),
			MaxIdleConnsPerHost:   max(32, o.MaxIdleConnsPerHost),
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	return &Client{o: o, http: &http.Client{Transport: tr}}
}

type chatBody struct {
	Model         string        `json:"model"`
	Messages      []events.Turn `json:"messages"`
	MaxTokens     int           `json:"max_tokens,omitempty"`
	Stream        bool          `json:"stream"`
	StreamOptions *streamOpts   `json:"stream_options,omitempty"`
}

type streamOpts struct {
	IncludeUsage bool `json:"include_usage"`
}

var (
	errStalled  = errors.New("provider stalled")
	errTooLong  = errors.New("provider call took too long")
	errFinished = errors.New("finished")
)

// watchdog cancels a call when nothing arrives for a while. A line arriving only
// records the time (an atomic store, not a timer reset per line); when the timer
// fires it re-arms itself for the rest of the window if something arrived meanwhile.
type watchdog struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
	// idle is the silence allowed after the first line; 0 until one arrived (the
	// first-byte timeout runs until then).
	idle atomic.Int64
	// last is when the latest line arrived (unix nanoseconds).
	last atomic.Int64
	fire func()
}

func newWatchdog(first time.Duration, fire func()) *watchdog {
	w := &watchdog{fire: fire}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t = time.AfterFunc(first, w.expired)
	return w
}

// alive records that something arrived; from now on d of silence cancels the call.
func (w *watchdog) alive(d time.Duration) {
	w.last.Store(time.Now().UnixNano())
	if w.idle.Load() != int64(d) {
		w.idle.Store(int64(d))
		// The first line: the remaining first-byte wait may be longer or shorter
		// than the idle window.
		w.mu.Lock()
		if !w.stopped {
			w.t.Reset(d)
		}
		w.mu.Unlock()
	}
}

func (w *watchdog) expired() {
	if idle := time.Duration(w.idle.Load()); idle > 0 {
		if left := idle - time.Since(time.Unix(0, w.last.Load())); left > 0 {
			w.mu.Lock()
			if !w.stopped {
				w.t.Reset(left)
			}
			w.mu.Unlock()
			return
		}
	}
	w.fire()
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.t.Stop()
}

// readers are the buffered readers of provider streams, reused from call to call.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// Stream implements app.Provider: one streaming chat completion.
func (c *Client) Stream(ctx context.Context, req app.ChatRequest, onDelta func(string)) (app.ChatResult, error) {
	parent := ctx
	body, err := json.Marshal(chatBody{
		Model: req.Model, Messages: req.Messages, MaxTokens: req.MaxTokens,
		Stream: true, StreamOptions: &streamOpts{IncludeUsage: true},
	})
	if err != nil {
		return app.ChatResult{}, fmt.Errorf("encode chat request: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(errFinished)
	ctx, cancelMax := context.WithTimeoutCause(ctx, c.o.MaxDuration, errTooLong)
	defer cancelMax()
	wd := newWatchdog(c.o.FirstByteTimeout, func() { cancel(errStalled) })
	defer wd.stop()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.o.BaseURL+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return app.ChatResult{}, c.configErr(err)
	}
	c.setHeaders(hreq)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")

	s := &streamState{c: c, req: req, onDelta: onDelta}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return app.ChatResult{}, s.failure(parent, ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return app.ChatResult{}, c.classify(req.Model, resp.StatusCode, resp.Header, raw, false)
	}
	// The first-byte timer keeps running until the first line of the body arrives: a
	// provider may send headers at once and queue the request for long.
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// A server that ignored stream:true answers with one chat.completion.
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLine))
		if err != nil {
			return app.ChatResult{}, s.failure(parent, ctx, err)
		}
		return s.whole(raw)
	}
	r := readers.Get().(*bufio.Reader)
	r.Reset(resp.Body)
	defer func() {
		r.Reset(nil)
		readers.Put(r)
	}()
	for {
		line, rerr := readLine(r)
		if len(line) > 0 || rerr == nil {
			wd.alive(c.o.IdleTimeout)
		}
		if len(line) > 0 {
			done, err := s.line(line, rerr != nil)
			if err != nil {
				return app.ChatResult{}, err
			}
			if done {
				return s.result, nil
			}
		}
		if rerr == io.EOF {
			if s.result.FinishReason != "" {
				// Some providers close without [DONE] (cerebras); the answer is complete.
				return s.result, nil
			}
			return app.ChatResult{}, c.interrupted(s.got, "closed the stream before the answer was complete")
		}
		if rerr != nil {
			return app.ChatResult{}, s.failure(parent, ctx, rerr)
		}
	}
}

func (c *Client) setHeaders(r *http.Request) {
	if c.o.Token != "" {
		r.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	r.Header.Set("User-Agent", "parley-inference/1.0")
}

// readLine reads one line without its line ending; an over-long line is an error.
// The line is valid until the next read from r (no copy when it fits r's buffer).
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		part, err := r.ReadSlice('\n')
		if buf == nil && !errors.Is(err, bufio.ErrBufferFull) {
			return bytes.TrimRight(part, "\r\n"), err
		}
		buf = append(buf, part...)
		if len(buf) > maxLine {
			return nil, errors.New("stream line too long")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

type streamState struct {
	c       *Client
	req     app.ChatRequest
	onDelta func(string)
	result  app.ChatResult
	got     bool // some text arrived
	// ch is the chunk being decoded, reused from line to line.
	ch chunk
}

type chunk struct {
	Object    string          `json:"object"`
	Model     string          `json:"model"`
	Choices   []choice        `json:"choices"`
	Usage     *chunkUsage     `json:"usage"`
	Error     json.RawMessage `json:"error"`
	ErrorType string          `json:"error_type"`
	Message   string          `json:"message"`
	Code      json.RawMessage `json:"code"`
}

type choice struct {
	Delta        *textPart `json:"delta"`
	Message      *textPart `json:"message"`
	FinishReason *string   `json:"finish_reason"`
}

type textPart struct {
	Content *string `json:"content"`
}

type chunkUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// line handles one SSE line; last says it was read up to EOF without a line ending.
func (s *streamState) line(line []byte, last bool) (done bool, err error) {
	if len(line) == 0 || line[0] == ':' {
		return false, nil // blank separator or keep-alive comment
	}
	field, value, _ := bytes.Cut(line, []byte(":"))
	if string(field) != "data" {
		return false, nil // event:, id:, retry: carry nothing we need
	}
	value = bytes.TrimSpace(value)
	if string(value) == "[DONE]" {
		return true, nil
	}
	if len(value) == 0 {
		return false, nil
	}
	if err := decodeChunk(value, &s.ch); err != nil {
		if last {
			return false, s.c.interrupted(s.got, "cut the stream in the middle of a message")
		}
		return false, s.c.interrupted(s.got, "sent a stream we could not read")
	}
	if s.ch.Error != nil || s.ch.Object == "error" {
		if e := s.c.streamError(s.req.Model, s.ch, string(value)); e != nil {
			return false, e
		}
	}
	s.apply(s.ch)
	return false, nil
}

func (s *streamState) apply(ch chunk) {
	if ch.Model != "" {
		s.result.Model = ch.Model
	}
	for _, choice := range ch.Choices {
		var content *string
		if choice.Delta != nil {
			content = choice.Delta.Content
		} else if choice.Message != nil {
			content = choice.Message.Content
		}
		if content != nil && *content != "" {
			s.got = true
			s.onDelta(*content)
		}
		if choice.FinishReason != nil && *choice.FinishReason != "" {
			s.result.FinishReason = *choice.FinishReason
		}
	}
	if ch.Usage != nil {
		// Whether usage comes in its own chunk, in the finish chunk or cumulatively on
		// every chunk, the last one seen is the total.
		s.result.Usage = &events.Usage{PromptTokens: ch.Usage.PromptTokens, CompletionTokens: ch.Usage.CompletionTokens}
	}
}

// whole handles a non-streamed chat.completion body.
func (s *streamState) whole(raw []byte) (app.ChatResult, error) {
	var ch chunk
	if err := json.Unmarshal(raw, &ch); err != nil {
		return app.ChatResult{}, s.c.interrupted(false, "sent an answer we could not read")
	}
	if e := s.c.streamError(s.req.Model, ch, string(raw)); e != nil {
		return app.ChatResult{}, e
	}
	s.apply(ch)
	if s.result.FinishReason == "" {
		s.result.FinishReason = "stop"
	}
	return s.result, nil
}

// failure maps a transport error: the caller's cancellation stays a context error;
// our own timeouts and connection failures become provider errors.
func (s *streamState) failure(parent, ctx context.Context, err error) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	c := s.c
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStalled) && !s.got:
		return &app.ProviderError{Code: events.CodeProviderUnavailable, Retryable: true, Reason: events.WaitOverloaded,
			Message: fmt.Sprintf("%s did not start answering within %s.", c.o.Name, c.o.FirstByteTimeout)}
	case errors.Is(cause, errStalled):
		return &app.ProviderError{Code: events.CodeProviderInterrupted, Retryable: true, Reason: events.WaitOverloaded,
			Message: fmt.Sprintf("%s stopped sending the answer for %s.", c.o.Name, c.o.IdleTimeout)}
	case errors.Is(cause, errTooLong):
		return &app.ProviderError{Code: events.CodeProviderInterrupted,
			Message: fmt.Sprintf("%s took longer than %s to answer.", c.o.Name, c.o.MaxDuration)}
	}
	if s.got || errors.Is(err, io.ErrUnexpectedEOF) {
		return c.interrupted(s.got, "cut the connection before the answer was complete")
	}
	return &app.ProviderError{Code: events.CodeProviderUnavailable, Retryable: true, Reason: events.WaitOverloaded,
		Message: fmt.Sprintf("Could not reach %s (%s).", c.o.Name, netReason(err))}
}

func (c *Client) interrupted(got bool, what string) *app.ProviderError {
	return &app.ProviderError{Code: events.CodeProviderInterrupted, Retryable: true, Reason: events.WaitOverloaded,
		Message: fmt.Sprintf("%s %s.", c.o.Name, what)}
}

func (c *Client) configErr(err error) error {
	return &app.ProviderError{Code: events.CodeProviderInvalid,
		Message: fmt.Sprintf("The address of %s is not valid; check %s.", c.o.Name, c.o.BaseURLVar)}
}

// netReason names a connection failure without internals.
func netReason(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var urlErr *url.Error
	switch {
	case errors.As(err, &dnsErr):
		return "its host name could not be resolved"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		if opErr.Timeout() {
			return "connecting timed out"
		}
		return "the connection was refused"
	case errors.As(err, &urlErr) && urlErr.Timeout():
		return "the request timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed"
	}
	return "the connection failed"
}
