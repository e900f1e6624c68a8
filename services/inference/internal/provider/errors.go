package provider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// maxDetail bounds the provider's own words quoted in a message.
const maxDetail = 300

// errorInfo is what an error body says, whatever its shape.
type errorInfo struct {
	msg       string
	code      string // error.code when a string (model_not_supported, context_length_exceeded)
	typ       string // error.type
	errorType string // TGI error_type (overloaded, validation, generation, ...)
	status    int    // error.http_status_code or a numeric error.code
	estimated float64
}

// parseErrorBody reads the error shapes seen in the wild: {"error":"..."},
// {"error":{"message","type","code","http_status_code"}}, {"message":...},
// {"detail":...}, {"object":"error","message":...}, plain text and HTML pages.
func parseErrorBody(raw []byte) errorInfo {
	var info errorInfo
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		info.msg = plainText(raw)
		return info
	}
	if e, ok := top["error"]; ok && string(e) != "null" {
		var s string
		if json.Unmarshal(e, &s) == nil {
			info.msg = s
		} else {
			var obj struct {
				Message    string          `json:"message"`
				Type       string          `json:"type"`
				Code       json.RawMessage `json:"code"`
				HTTPStatus int             `json:"http_status_code"`
			}
			if json.Unmarshal(e, &obj) == nil {
				info.msg, info.typ, info.status = obj.Message, obj.Type, obj.HTTPStatus
				info.code, info.status = codeOf(obj.Code, info.status)
			}
		}
	}
	_ = json.Unmarshal(top["error_type"], &info.errorType)
	_ = json.Unmarshal(top["estimated_time"], &info.estimated)
	if info.msg == "" {
		var s string
		if json.Unmarshal(top["message"], &s) == nil {
			info.msg = s
		}
		if info.code == "" && info.status == 0 {
			info.code, info.status = codeOf(top["code"], 0)
		}
	}
	if info.msg == "" {
		if d, ok := top["detail"]; ok {
			var s string
			if json.Unmarshal(d, &s) == nil {
				info.msg = s
			} else {
				info.msg = string(d)
			}
		}
	}
	return info
}

// codeOf reads a `code` that may be a string slug or an HTTP status number.
func codeOf(raw json.RawMessage, status int) (string, int) {
	if len(raw) == 0 {
		return "", status
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, status
	}
	var n int
	if json.Unmarshal(raw, &n) == nil && status == 0 && n >= 400 && n < 600 {
		return "", n
	}
	return "", status
}

var (
	titleRe = regexp.MustCompile(`(?is)<title>(.*?)</title>`)
	spaceRe = regexp.MustCompile(`\s+`)
	tagRe   = regexp.MustCompile(`<[^>]*>`)
)

func plainText(raw []byte) string {
	s := string(raw)
	if strings.Contains(strings.ToLower(s), "<html") || strings.HasPrefix(strings.TrimSpace(s), "<") {
		if m := titleRe.FindStringSubmatch(s); m != nil {
			return strings.TrimSpace(m[1])
		}
		return strings.TrimSpace(tagRe.ReplaceAllString(s, " "))
	}
	return s
}

// clean makes provider text safe to show: no token, one line, bounded.
func (c *Client) clean(s string) string {
	if c.o.Token != "" {
		s = strings.ReplaceAll(s, c.o.Token, "[redacted]")
	}
	s = strings.TrimSpace(spaceRe.ReplaceAllString(s, " "))
	if len(s) > maxDetail {
		cut := maxDetail
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// detail is "(status: provider's words)" for a message.
func (c *Client) detail(status int, msg string) string {
	msg = c.clean(msg)
	switch {
	case status > 0 && msg != "":
		return fmt.Sprintf(" (%d: %s)", status, msg)
	case status > 0:
		return fmt.Sprintf(" (%d %s)", status, http.StatusText(status))
	case msg != "":
		return fmt.Sprintf(" (%s)", msg)
	}
	return ""
}

// classify maps an error answer to a ProviderError. inStream says it arrived inside a
// 200 stream.
func (c *Client) classify(model string, status int, h http.Header, raw []byte, inStream bool) *app.ProviderError {
	info := parseErrorBody(raw)
	if info.msg == "" && h != nil {
		info.msg = h.Get("X-Error-Message")
	}
	return c.classifyInfo(model, status, h, info, inStream)
}

func (c *Client) classifyInfo(model string, status int, h http.Header, info errorInfo, inStream bool) *app.ProviderError {
	name := c.o.Name
	d := c.detail(status, info.msg)
	lower := strings.ToLower(info.msg)
	pe := &app.ProviderError{Status: status}
	isContext := info.code == "context_length_exceeded" || strings.Contains(lower, "maximum context length") ||
		(strings.Contains(lower, "max_new_tokens") && strings.Contains(lower, "must be <=")) ||
		strings.Contains(lower, "context length") || strings.Contains(lower, "context window")
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		pe.Code = events.CodeProviderAuth
		pe.Message = fmt.Sprintf("%s refused the API token%s. Check %s: it must be a valid token allowed to call the model.",
			name, d, c.o.TokenVar)
		if c.o.Token == "" {
			pe.Message = fmt.Sprintf("%s needs an API token%s. Set %s.", name, d, c.o.TokenVar)
		}
	case status == http.StatusNotFound:
		pe.Code = events.CodeModelNotFound
		pe.Message = fmt.Sprintf("%s does not know the model %s%s. Check the model id and %s.", name, model, d, c.o.BaseURLVar)
	case status == http.StatusGone:
		pe.Code = events.CodeProviderInvalid
		pe.Message = fmt.Sprintf("%s answered that this endpoint is retired%s. Check %s (HuggingFace: https://router.huggingface.co/v1).",
			name, d, c.o.BaseURLVar)
	case status == http.StatusPaymentRequired:
		pe.Code = events.CodeProviderCredits
		pe.Message = fmt.Sprintf("The account behind %s has no inference credits left%s.", c.o.TokenVar, d)
	case info.code == "model_not_supported" || strings.Contains(lower, "not supported by any provider"):
		pe.Code = events.CodeModelNotSupported
		pe.Message = fmt.Sprintf("No inference provider serves the model %s for this account%s. Pick another model.", model, d)
	case isContext && (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity || status == http.StatusRequestEntityTooLarge):
		pe.Code = events.CodeContextTooLong
		pe.Message = fmt.Sprintf("The conversation is too long for the model %s%s. Start a new chat or shorten your message.", model, d)
	case status == http.StatusTooManyRequests && info.errorType == "overloaded":
		pe.Code, pe.Retryable, pe.Reason = events.CodeProviderRateLimited, true, events.WaitOverloaded
		pe.Message = fmt.Sprintf("The model %s is overloaded%s.", model, d)
	case status == http.StatusTooManyRequests:
		pe.Code, pe.Retryable, pe.Reason = events.CodeProviderRateLimited, true, events.WaitRateLimited
		pe.Message = fmt.Sprintf("%s is rate limiting requests%s.", name, d)
	case status == http.StatusServiceUnavailable && (info.estimated > 0 || strings.Contains(lower, "loading")):
		pe.Code, pe.Retryable, pe.Reason = events.CodeProviderUnavailable, true, events.WaitModelLoading
		pe.Message = fmt.Sprintf("The model %s is still loading%s.", model, d)
	case status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout ||
		status == http.StatusRequestTimeout:
		pe.Code, pe.Retryable, pe.Reason = events.CodeProviderUnavailable, true, events.WaitOverloaded
		pe.Message = fmt.Sprintf("%s is temporarily unavailable%s.", name, d)
	case inStream && status == 0 && info.errorType == "overloaded":
		pe.Code, pe.Retryable, pe.Reason = events.CodeProviderUnavailable, true, events.WaitOverloaded
		pe.Message = fmt.Sprintf("The model %s became overloaded while answering%s.", model, d)
	case status == http.StatusFailedDependency || info.errorType == "generation" || info.errorType == "incomplete_generation":
		pe.Code = events.CodeProviderUnavailable
		pe.Message = fmt.Sprintf("The model %s failed while generating%s.", model, d)
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity || (status >= 400 && status < 500) ||
		info.errorType == "validation":
		pe.Code = events.CodeProviderInvalid
		pe.Message = fmt.Sprintf("%s rejected the request for the model %s%s.", name, model, d)
	case status >= 500:
		pe.Code = events.CodeProviderUnavailable
		pe.Message = fmt.Sprintf("%s failed to answer%s.", name, d)
	default:
		pe.Code = events.CodeProviderError
		pe.Message = fmt.Sprintf("%s stopped with an error%s.", name, d)
	}
	if inStream && pe.Code != events.CodeProviderError {
		pe.Message = strings.TrimSuffix(pe.Message, ".") + " (while streaming)."
	}
	if pe.Retryable {
		pe.RetryAfter = retryHint(h, info.estimated)
	}
	return pe
}

// streamError returns the error carried by a stream event, or nil: any non-null
// `error` (TGI, vLLM, huggingface_hub semantics) or vLLM's older {"object":"error"}.
func (c *Client) streamError(model string, ch chunk, raw string) *app.ProviderError {
	hasErr := len(ch.Error) > 0 && string(ch.Error) != "null"
	if !hasErr && ch.Object != "error" {
		return nil
	}
	info := parseErrorBody([]byte(raw))
	return c.classifyInfo(model, info.status, nil, info, true)
}

var rateLimitT = regexp.MustCompile(`(?:^|[;,\s])t=(\d+)`)

// retryHint reads how long the provider asks us to wait: Retry-After (seconds or an
// HTTP date), the IETF RateLimit header's t=, or a loading model's estimated_time.
func retryHint(h http.Header, estimated float64) time.Duration {
	if h != nil {
		if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
			if t, err := http.ParseTime(v); err == nil {
				if d := time.Until(t); d > 0 {
					return d
				}
				return 0
			}
		}
		if v := h.Get("RateLimit"); v != "" {
			if m := rateLimitT.FindStringSubmatch(v); m != nil {
				if n, err := strconv.Atoi(m[1]); err == nil {
					return time.Duration(n) * time.Second
				}
			}
		}
	}
	if estimated > 0 {
		return time.Duration(estimated * float64(time.Second))
	}
	return 0
}
