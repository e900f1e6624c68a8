// Package transport is the gateway's HTTP edge: the chi router, its middleware
// (request ids, security headers, CSRF, body limits, authentication, rate limits,
// metrics), the handlers that turn each API call into a NATS request, and the
// server-sent event relays.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/services/gateway/internal/metrics"
	"github.com/parley-chat/parley/services/gateway/internal/session"
	"github.com/parley-chat/parley/services/gateway/internal/spa"
)

// Options are the edge's settings. Zero values take the defaults in brackets.
type Options struct {
	// CookieSecure forces Secure __Host- cookies (and HSTS) even for plain-HTTP requests,
	// as behind a TLS-terminating proxy. TLS requests always get them.
	CookieSecure bool
	// TrustedProxies are the CIDRs of proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// TrustedOrigins are extra origins (scheme://host[:port]) allowed to make
	// cookie-authenticated unsafe requests, e.g. a development server on another port.
	TrustedOrigins []string
	// SendRate is message sends (and regenerations) per user per minute [30].
	SendRate int
	// AuthRate is signup and login attempts per client IP per minute [30].
	AuthRate int
	// WebDir holds the built SPA.
	WebDir string
	// KeepAlive is the interval of SSE keepalive comments [15s].
	KeepAlive time.Duration
	// StreamWriteTimeout bounds each write of an event stream [30s].
	StreamWriteTimeout time.Duration
	// AuthTimeout, ChatTimeout and PasswordTimeout are the NATS request budgets for auth
	// calls, chat and model calls, and calls that hash a password [3s, 5s, 10s].
	AuthTimeout, ChatTimeout, PasswordTimeout time.Duration
	// SendTimeout is the budget of a message send or regenerate [20s]. It is longer
	// than ChatTimeout because under a burst of sends chat queues them (its work per
	// request is bounded by its own RPC timeout) and answers later: a send that gave up
	// early would answer 504 although chat stored the message and started the answer.
	SendTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.SendRate <= 0 {
		o.SendRate = 30
	}
	if o.AuthRate <= 0 {
		o.AuthRate = 30
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = 30 * time.Second
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 3 * time.Second
	}
	if o.ChatTimeout <= 0 {
		o.ChatTimeout = 5 * time.Second
	}
	if o.PasswordTimeout <= 0 {
		o.PasswordTimeout = 10 * time.Second
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 20 * time.Second
	}
	return o
}

// Deps are what the edge talks to. NC, JS and Guard may be nil only for a router that
// is walked, never served (see Routes).
type Deps struct {
	Logger  *slog.Logger
	NC      *nats.Conn
	JS      jetstream.JetStream
	Guard   *session.Guard
	Metrics *metrics.Metrics
	// Shutdown is done when the server is shutting down: open streams end then.
	Shutdown context.Context
}

// Server holds the edge's dependencies; its Handler is the whole HTTP surface.
type Server struct {
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	guard    *session.Guard
	metrics  *metrics.Metrics
	shutdown context.Context
	opts     Options
	cop      *http.CrossOriginProtection
	router   chi.Router
	// hub relays generation events to the open answer streams (nil without NATS).
	hub *genHub
	// chats relays chat events to the open chat streams (nil without NATS).
	chats *chatHub
	// sent are the answers just asked for through this replica.
	sent *sentAnswers
}

// New builds the edge.
func New(deps Deps, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	s := &Server{
		log:      deps.Logger,
		nc:       deps.NC,
		js:       deps.JS,
		guard:    deps.Guard,
		metrics:  deps.Metrics,
		shutdown: deps.Shutdown,
		opts:     opts,
		cop:      http.NewCrossOriginProtection(),
		sent:     newSentAnswers(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	if s.shutdown == nil {
		s.shutdown = context.Background()
	}
	for _, o := range opts.TrustedOrigins {
		if err := s.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("trusted origin: %w", err)
		}
	}
	if deps.NC != nil && deps.JS != nil {
		hub, err := newGenHub(deps.NC, deps.JS)
		if err != nil {
			return nil, err
		}
		s.hub = hub
		// The hub reads until the server shuts down (open streams end then too).
		s.chats = newChatHub(deps.NC, deps.JS, s.log)
		s.chats.start(s.shutdown)
	}
	s.router = s.routes()
	return s, nil
}

// Handler is the HTTP handler of the whole edge.
func (s *Server) Handler() http.Handler { return s.router }

// Route is one API route, as "METHOD", "/pattern".
type Route struct {
	Method  string
	Pattern string
}

// Routes lists every route of the router (for tests that must cover each one).
func (s *Server) Routes() ([]Route, error) {
	var out []Route
	err := chi.Walk(s.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, Route{Method: method, Pattern: route})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk routes: %w", err)
	}
	return out, nil
}

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.recoverer, requestID, s.securityHeaders, s.observe, s.clientIP())
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", s.metrics.Handler())

	r.Route("/api", func(r chi.Router) {
		// CSRF is checked before the body (limitBody): a cross-site form post is a
		// forgery (403 csrf_rejected), not merely the wrong media type.
		r.Use(noStore)
		r.NotFound(s.apiNotFound)
		r.MethodNotAllowed(s.methodNotAllowed)

		authLimit := httprate.NewRateLimiter(s.opts.AuthRate, time.Minute,
			httprate.WithKeyFuncs(keyByClientIP), httprate.WithLimitHandler(s.rateLimited))
		sendLimit := httprate.NewRateLimiter(s.opts.SendRate, time.Minute,
			httprate.WithKeyFuncs(keyByUser), httprate.WithLimitHandler(s.rateLimited))

		// Session endpoints: the CSRF header and same-origin check apply whatever the
		// credentials (login CSRF), and no session is needed.
		r.Group(func(r chi.Router) {
			r.Use(s.csrf(true), limitBody)
			r.With(authLimit.Handler).Post("/auth/signup", s.handle(s.signup))
			r.With(authLimit.Handler).Post("/auth/login", s.handle(s.login))
			r.Post("/auth/refresh", s.handle(s.refresh))
		})

		r.Group(func(r chi.Router) {
			r.Use(s.csrf(false), limitBody, s.authenticate)
			r.Post("/auth/logout", s.handle(s.logout))
			r.Post("/auth/logout-all", s.handle(s.logoutAll))
			r.Get("/auth/me", s.handle(s.me))

			r.Get("/models", s.handle(s.models))

			r.Post("/chats", s.handle(s.createChat))
			r.Get("/chats", s.handle(s.listChats))
			r.Get("/chats/latest", s.handle(s.latestChat))
			r.Get("/chats/{chatID}", s.handle(s.getChat))
			r.Patch("/chats/{chatID}", s.handle(s.updateChat))
			r.Delete("/chats/{chatID}", s.handle(s.deleteChat))
			r.Get("/chats/{chatID}/messages", s.handle(s.listMessages))
			r.With(sendLimit.Handler).Post("/chats/{chatID}/messages", s.handle(s.sendMessage))
			r.With(sendLimit.Handler).Post("/chats/{chatID}/regenerate", s.handle(s.regenerate))
			r.Get("/chats/{chatID}/export", s.handle(s.exportChat))
			r.Get("/chats/{chatID}/events", s.handle(s.chatEvents))

			r.Get("/messages/{messageID}/stream", s.handle(s.streamMessage))
			r.Post("/messages/{messageID}/cancel", s.handle(s.cancelMessage))
		})
	})

	app := spa.New(s.opts.WebDir)
	r.Get("/*", app.ServeHTTP)
	r.Head("/*", app.ServeHTTP)
	return r
}

// notFound answers paths no route knows: JSON under /api, the SPA's index for any
// other GET (deep links), 404 JSON otherwise.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errRouteNotFound)
}

func (s *Server) apiNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errRouteNotFound)
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errMethodNotAllowed)
}

func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request) {
	// httprate has set Retry-After already.
	writeJSON(w, errRateLimited.Status(), errorEnvelope(errRateLimited))
}

// keyByClientIP keys a rate limit by the client IP the clientIP middleware found.
func keyByClientIP(r *http.Request) (string, error) {
	if ip := middleware.GetClientIP(r.Context()); ip != "" {
		return "ip:" + ip, nil
	}
	return "addr:" + r.RemoteAddr, nil
}

// keyByUser keys a rate limit by the authenticated user.
func keyByUser(r *http.Request) (string, error) {
	p, ok := principalFrom(r.Context())
	if !ok {
		return "", errors.New("rate limit by user without a user")
	}
	return "user:" + p.UserID, nil
}
