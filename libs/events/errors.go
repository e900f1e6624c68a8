package events

import (
	"errors"
	"fmt"
	"net/http"
)

// Stable error codes sent to clients. The set is closed: add a code here, with its
// HTTP status, before using it anywhere.
const (
	CodeInvalidInput         = "invalid_input"
	CodeInvalidJSON          = "invalid_json"
	CodeUsernameTaken        = "username_taken"
	CodeEmailTaken           = "email_taken"
	CodeInvalidCredentials   = "invalid_credentials"
	CodeTooManyAttempts      = "too_many_attempts"
	CodeRateLimited          = "rate_limited"
	CodeUnauthenticated      = "unauthenticated"
	CodeNotFound             = "not_found"
	CodeNoChats              = "no_chats"
	CodeUnknownModel         = "unknown_model"
	CodeGenerationInProgress = "generation_in_progress"
	CodeNotRunning           = "not_running"
	CodeCSRFRejected         = "csrf_rejected"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMedia     = "unsupported_media_type"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnavailable          = "unavailable"
	CodeTimeout              = "timeout"
	CodeBadGateway           = "bad_gateway"
	CodeInternal             = "internal"
	CodeConflict             = "conflict"

	// Codes carried on failed answers (message.error.code), not HTTP responses.
	CodeProviderAuth        = "provider_auth"
	CodeModelNotFound       = "model_not_found"
	CodeModelNotSupported   = "model_not_supported"
	CodeContextTooLong      = "context_length_exceeded"
	CodeProviderRateLimited = "provider_rate_limited"
	CodeProviderUnavailable = "provider_unavailable"
	CodeProviderError       = "provider_error"
	CodeProviderCredits     = "provider_credits_exhausted"
	CodeProviderInvalid     = "provider_invalid_request"
	CodeProviderInterrupted = "provider_interrupted"
	CodeGenerationAbandoned = "generation_abandoned"
)

var statusByCode = map[string]int{
	CodeInvalidInput:         http.StatusBadRequest,
	CodeInvalidJSON:          http.StatusBadRequest,
	CodeUsernameTaken:        http.StatusConflict,
	CodeEmailTaken:           http.StatusConflict,
	CodeInvalidCredentials:   http.StatusUnauthorized,
	CodeTooManyAttempts:      http.StatusTooManyRequests,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeUnauthenticated:      http.StatusUnauthorized,
	CodeNotFound:             http.StatusNotFound,
	CodeNoChats:              http.StatusNotFound,
	CodeUnknownModel:         http.StatusBadRequest,
	CodeGenerationInProgress: http.StatusConflict,
	CodeNotRunning:           http.StatusConflict,
	CodeCSRFRejected:         http.StatusForbidden,
	CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia:     http.StatusUnsupportedMediaType,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeTimeout:              http.StatusGatewayTimeout,
	CodeBadGateway:           http.StatusBadGateway,
	CodeInternal:             http.StatusInternalServerError,
	CodeConflict:             http.StatusConflict,
}

// Error is the error every service sends across NATS and the gateway sends over HTTP:
// a stable snake_case code, a message a person can read (never internals), and the HTTP
// status it maps to. RetryAfter, in seconds, is set for 429 and 503 answers when known.
type Error struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Status is the HTTP status for the error's code (500 for a code not in the table).
func (e *Error) Status() int {
	if s, ok := statusByCode[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// StatusOf returns the HTTP status for a code, and whether the code is known.
func StatusOf(code string) (int, bool) {
	s, ok := statusByCode[code]
	return s, ok
}

// ErrorEnvelope is the JSON body of every error response: {"error": {...}}.
type ErrorEnvelope struct {
	Error *Error `json:"error"`
}

// AsError returns err as an *Error when it is one (or wraps one); otherwise it returns
// a generic internal error, so that nothing internal ever reaches a client.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "Something went wrong on our side. Please try again."}
}

// Common errors.
var (
	ErrNotFound        = &Error{Code: CodeNotFound, Message: "Not found."}
	ErrUnauthenticated = &Error{Code: CodeUnauthenticated, Message: "Please sign in."}
	ErrUnavailable     = &Error{Code: CodeUnavailable, Message: "The service is temporarily unavailable. Please try again shortly.", RetryAfter: 2}
	ErrTimeout         = &Error{Code: CodeTimeout, Message: "The service took too long to answer. Please try again."}
	ErrBadGateway      = &Error{Code: CodeBadGateway, Message: "A service sent an answer we could not read."}
)
