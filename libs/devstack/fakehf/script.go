package fakehf

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is a way a 200 stream goes wrong.
type Fault int

const (
	// FaultNone: a normal answer.
	FaultNone Fault = iota
	// FaultMidStreamError: after Step.After content chunks, an error event
	// (Step.StreamError) and then [DONE].
	FaultMidStreamError
	// FaultDrop: after Step.After content chunks, the connection is cut.
	FaultDrop
	// FaultNoDone: a complete answer (with finish_reason) but no [DONE] before closing.
	FaultNoDone
	// FaultCutJSON: after Step.After content chunks, half a JSON chunk, then the
	// connection is cut.
	FaultCutJSON
	// FaultStall: after Step.After content chunks, the server stops sending anything and
	// holds the connection until the client goes away.
	FaultStall
)

// Step is one scripted answer. A Step with Status >= 400 is an error response (Body and
// Header as given); otherwise a normal answer with an optional Fault.
type Step struct {
	Status int
	Header http.Header
	Body   string

	// Fault makes a 200 stream fail after After content chunks.
	Fault       Fault
	After       int
	StreamError string
	// Reply overrides the answer text.
	Reply string
	// Delay is waited before answering (errors included).
	Delay time.Duration
}

// Error bodies as documented in hf-protocol.md §2.
const (
	BodyNoAuth          = `{"error":"Invalid username or password."}`
	BodyBadCredentials  = `{"error":"Invalid credentials in Authorization header"}`
	BodyCredits         = `{"error":"You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits."}`
	BodyValidation      = "{\"error\":\"Input validation error: `temperature` must be strictly positive\",\"error_type\":\"validation\"}"
	BodyRateLimit       = `{"error":"Rate limit reached. You reached free usage limit (reset hourly). Please subscribe to a plan at https://huggingface.co/pricing to use the API at this rate"}`
	BodyOverloaded      = `{"error":"Model is overloaded","error_type":"overloaded"}`
	BodyGeneration      = `{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}`
	BodyIncomplete      = `{"error":"Incomplete generation","error_type":"incomplete_generation"}`
	BodyServerErrString = `{"error":"Internal Server Error"}`
	BodyServerErrObject = `{"error":{"message":"The upstream provider failed to answer","type":"server_error","code":500}}`
	BodyServerErrMsg    = `{"message":"Internal server error occurred"}`
	BodyServerErrDetail = `{"detail":"Internal Server Error"}`
	BodyHTML            = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
	BodyUnavailable     = `{"error":{"message":"Service temporarily unavailable","type":"server_error","code":503}}`
	BodyLegacyGone      = `{"error":"https://api-inference.huggingface.co is no longer supported. Please use https://router.huggingface.co instead."}`

	StreamErrTGI        = `{"error":{"message":"Request failed during generation: Server error: CUDA out of memory","http_status_code":500}}`
	StreamErrTGIVal     = `{"error":{"message":"Input validation error: max_tokens too large","http_status_code":422}}`
	StreamErrVLLM       = `{"error":{"message":"The engine died unexpectedly","type":"InternalServerError","code":500,"param":null}}`
	StreamErrOverloaded = `{"error":"Model is overloaded","error_type":"overloaded"}`
	StreamErrVLLMOld    = `{"object":"error","message":"The engine died unexpectedly","type":"InternalServerError","code":500}`
)

// ErrorStep is an error answer with the given status and body (JSON content type unless
// the body looks like HTML).
func ErrorStep(status int, body string) Step {
	return Step{Status: status, Body: body}
}

// RateLimited is a 429 carrying `Retry-After: retryAfter` (no header when empty).
func RateLimited(retryAfter string) Step {
	s := Step{Status: http.StatusTooManyRequests, Body: BodyRateLimit, Header: http.Header{}}
	if retryAfter != "" {
		s.Header.Set("Retry-After", retryAfter)
	}
	return s
}

// RateLimitedHeader is a 429 carrying the IETF `RateLimit` header with t=seconds.
func RateLimitedHeader(seconds int) Step {
	s := Step{Status: http.StatusTooManyRequests, Body: BodyRateLimit, Header: http.Header{}}
	s.Header.Set("RateLimit", `"api";r=0;t=`+strconv.Itoa(seconds))
	s.Header.Set("RateLimit-Policy", `"fixed window";"api";q=1000;w=300`)
	return s
}

// Loading is the legacy cold-model 503 with estimated_time (seconds, omitted when < 0).
func Loading(model string, estimated float64) Step {
	body := `{"error":"Model ` + model + ` is currently loading"`
	if estimated >= 0 {
		body += `,"estimated_time":` + strconv.FormatFloat(estimated, 'f', -1, 64)
	}
	return Step{Status: http.StatusServiceUnavailable, Body: body + "}"}
}

// ContextTooLong is the OpenAI/vLLM-style 400 context_length_exceeded body.
func ContextTooLong(limit, requested, inMessages, inCompletion int) Step {
	return Step{Status: http.StatusBadRequest, Body: contextBody(limit, requested, inMessages, inCompletion)}
}

// MidStreamError sends K content chunks, then the error event (one of StreamErr*).
func MidStreamError(after int, event string) Step {
	return Step{Fault: FaultMidStreamError, After: after, StreamError: event}
}

// Drop cuts the connection after K content chunks.
func Drop(after int) Step { return Step{Fault: FaultDrop, After: after} }

// NoDone answers completely but closes without [DONE].
func NoDone() Step { return Step{Fault: FaultNoDone} }

// Preset returns a named scripted step, for selecting failures per request (header
// X-Fakehf-Step or a `[fakehf:NAME]` marker in the last user message) or from a
// standalone binary's flags. A `:K` suffix sets the chunk count for stream faults
// (e.g. "drop:3").
func Preset(name string) (Step, bool) {
	after := 2
	if i := strings.LastIndexByte(name, ':'); i > 0 {
		if k, err := strconv.Atoi(name[i+1:]); err == nil {
			after = k
			name = name[:i]
		}
	}
	switch name {
	case "ok":
		return Step{}, true
	case "429":
		return RateLimited(""), true
	case "429-retry-after":
		return RateLimited("1"), true
	case "429-ratelimit":
		return RateLimitedHeader(1), true
	case "429-overloaded":
		return ErrorStep(429, BodyOverloaded), true
	case "503-loading":
		return Loading("the model", 1), true
	case "503":
		return ErrorStep(503, BodyUnavailable), true
	case "401":
		return Step{Status: 401, Body: BodyNoAuth, Header: authHeader()}, true
	case "401-bad":
		return ErrorStep(401, BodyBadCredentials), true
	case "402":
		return ErrorStep(402, BodyCredits), true
	case "404":
		return Step{Status: 404, Body: "Not Found", Header: http.Header{"Content-Type": {"text/plain"}}}, true
	case "410":
		return ErrorStep(410, BodyLegacyGone), true
	case "422":
		return ErrorStep(422, BodyValidation), true
	case "400-model":
		return ErrorStep(400, modelNotSupportedBody("the model")), true
	case "400-context":
		return ContextTooLong(32768, 40000, 39000, 1000), true
	case "424":
		return ErrorStep(424, BodyGeneration), true
	case "500":
		return ErrorStep(500, BodyServerErrString), true
	case "500-object":
		return ErrorStep(500, BodyServerErrObject), true
	case "500-message":
		return ErrorStep(500, BodyServerErrMsg), true
	case "500-detail":
		return ErrorStep(500, BodyServerErrDetail), true
	case "500-incomplete":
		return ErrorStep(500, BodyIncomplete), true
	case "502":
		return ErrorStep(502, BodyHTML), true
	case "504":
		return ErrorStep(504, ""), true
	case "mid-error-tgi":
		return MidStreamError(after, StreamErrTGI), true
	case "mid-error-vllm":
		return MidStreamError(after, StreamErrVLLM), true
	case "mid-error-overloaded":
		return MidStreamError(after, StreamErrOverloaded), true
	case "drop":
		return Drop(after), true
	case "no-done":
		return NoDone(), true
	case "cut":
		return Step{Fault: FaultCutJSON, After: after}, true
	case "stall":
		return Step{Fault: FaultStall, After: after}, true
	}
	return Step{}, false
}

func authHeader() http.Header {
	return http.Header{
		"Www-Authenticate": {`Bearer realm="Authentication required", charset="UTF-8"`},
		"X-Error-Message":  {"Invalid username or password."},
	}
}

func modelNotSupportedBody(model string) string {
	return `{"error":{"message":"The requested model '` + jsonEscape(model) + `' is not supported by any provider you have enabled.","type":"invalid_request_error","param":"model","code":"model_not_supported"}}`
}

func contextBody(limit, requested, inMessages, inCompletion int) string {
	return `{"error":{"message":"This model's maximum context length is ` + strconv.Itoa(limit) +
		` tokens. However, you requested ` + strconv.Itoa(requested) + ` tokens (` + strconv.Itoa(inMessages) +
		` in the messages, ` + strconv.Itoa(inCompletion) +
		` in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`
}

func tgiContextBody(limit, inputs, maxNew int) string {
	return "{\"error\":\"Input validation error: `inputs` tokens + `max_new_tokens` must be <= " + strconv.Itoa(limit) +
		". Given: " + strconv.Itoa(inputs) + " `inputs` tokens and " + strconv.Itoa(maxNew) + " `max_new_tokens`\",\"error_type\":\"validation\"}"
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
