package transport

import (
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/parley-chat/parley/libs/events"
)

// Security headers sent on every response.
const (
	contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	hsts                  = "max-age=31536000; includeSubDomains"
	headerCSRF            = "X-Parley-CSRF"
	maxRequestIDLen       = 64
)

func errorEnvelope(e *events.Error) events.ErrorEnvelope {
	return events.ErrorEnvelope{Error: e}
}

// recoverer turns a panic into a logged generic 500, never a stack trace to the client.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "panic", v, "method", r.Method, "path", r.URL.Path,
				"request_id", events.RequestID(r.Context()), "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, errorEnvelope(errInternal))
		}()
		next.ServeHTTP(w, r)
	})
}

// requestID gives every request an id: the client's X-Request-Id when it is sane
// (at most 64 of [A-Za-z0-9._-]), else a new one. It is echoed on the response and
// carried in the context, from where events.Request puts it on every NATS request.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(events.HeaderRequestID)
		if !saneRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(events.HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(events.WithRequestID(r.Context(), id)))
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.secure(r) {
			h.Set("Strict-Transport-Security", hsts)
		}
		next.ServeHTTP(w, r)
	})
}

// noStore keeps API answers out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// observe records each request's count and latency by route pattern and status.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.Observe(r.Method, route, status, time.Since(start))
		}()
		next.ServeHTTP(ww, r)
	})
}

// clientIP records the client's IP: the TCP peer, or, when the peer is a trusted
// proxy, the first untrusted address in X-Forwarded-For.
func (s *Server) clientIP() func(http.Handler) http.Handler {
	if len(s.opts.TrustedProxies) == 0 {
		return middleware.ClientIPFromRemoteAddr
	}
	cidrs := make([]string, len(s.opts.TrustedProxies))
	for i, p := range s.opts.TrustedProxies {
		cidrs[i] = p.String()
	}
	return middleware.ClientIPFromXFF(cidrs...)
}

// csrf refuses unsafe requests that may have been forged by another site: they must
// carry X-Parley-CSRF: 1 (which a cross-site form cannot send, and a cross-site fetch
// cannot send without a CORS preflight we never grant) and must not come from another
// origin (Sec-Fetch-Site, or Origin against Host). With always false, requests that
// carry an Authorization header are exempt: no browser attaches one by itself.
func (s *Server) csrf(always bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				next.ServeHTTP(w, r)
				return
			}
			if !always && r.Header.Get("Authorization") != "" {
				next.ServeHTTP(w, r)
				return
			}
			if r.Header.Get(headerCSRF) != "1" || s.cop.Check(r) != nil {
				writeJSON(w, errCSRF.Status(), errorEnvelope(errCSRF))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// secure reports whether cookies must be Secure __Host- cookies for this request.
func (s *Server) secure(r *http.Request) bool {
	return s.opts.CookieSecure || r.TLS != nil
}
