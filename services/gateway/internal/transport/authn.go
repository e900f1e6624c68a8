package transport

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/services/gateway/internal/session"
)

// Cookie names: plain over HTTP, __Host- (Secure, no Domain, Path=/) over HTTPS.
const (
	cookieAccess        = "parley_at"
	cookieRefresh       = "parley_rt"
	hostPrefix          = "__Host-"
	maxRefreshTokenSize = 512
)

// credentials say how a request authenticated.
type credentials int

const (
	viaBearer credentials = iota + 1
	viaCookie
)

type principalKey struct{}

type authContext struct {
	session.Principal
	via credentials
}

// withPrincipal returns ctx carrying the request's principal and the access token it
// was verified from: every NATS request made with ctx forwards that token
// (events.HeaderUserToken), and chat acts only as the user the token names.
func withPrincipal(ctx context.Context, p session.Principal, via credentials, token string) context.Context {
	ctx = events.WithUserToken(ctx, token)
	return context.WithValue(ctx, principalKey{}, authContext{Principal: p, via: via})
}

func principalFrom(ctx context.Context) (authContext, bool) {
	a, ok := ctx.Value(principalKey{}).(authContext)
	return a, ok
}

// mustPrincipal returns the principal of an authenticated request; the authenticate
// middleware guarantees there is one on every route that calls it.
func mustPrincipal(r *http.Request) authContext {
	a, ok := principalFrom(r.Context())
	if !ok {
		panic("transport: handler without authenticate middleware")
	}
	return a
}

// authenticate requires a valid session: a bearer token when an Authorization header
// is present (and then only that), else the access cookie, refreshed transparently
// with the refresh cookie when it is missing or no longer good. Every failure answers
// the same 401; a cookie session that failed has its cookies cleared.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if h := r.Header.Get("Authorization"); h != "" {
			token, ok := bearerToken(h)
			if !ok {
				s.unauthenticated(w, r, false)
				return
			}
			p, err := s.guard.Check(ctx, token)
			if err != nil {
				s.authFailed(w, r, err, false)
				return
			}
			next.ServeHTTP(w, r.WithContext(withPrincipal(ctx, p, viaBearer, token)))
			return
		}

		access := s.cookie(r, cookieAccess)
		refresh := s.cookie(r, cookieRefresh)
		if access == "" && refresh == "" {
			s.unauthenticated(w, r, false)
			return
		}
		var err error = session.ErrInvalid
		var p session.Principal
		token := access
		if access != "" {
			p, err = s.guard.Check(ctx, access)
		}
		if errors.Is(err, session.ErrInvalid) && refresh != "" {
			sess, rerr := s.refreshSession(ctx, r, refresh)
			switch {
			case rerr == nil:
				s.setSessionCookies(w, r, sess)
				token = sess.AccessToken
				p, err = s.guard.Check(ctx, token)
			case isAuthFailure(rerr):
				err = session.ErrInvalid
			default:
				// Auth is down or slow: say so, and keep the cookies for the retry.
				s.writeError(w, r, rerr)
				return
			}
		}
		if err != nil {
			s.authFailed(w, r, err, true)
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(ctx, p, viaCookie, token)))
	})
}

// authFailed answers a failed token check: 503 while keys are not loaded yet, else 401.
func (s *Server) authFailed(w http.ResponseWriter, r *http.Request, err error, cookies bool) {
	if errors.Is(err, session.ErrNotReady) {
		s.writeError(w, r, events.ErrUnavailable)
		return
	}
	s.unauthenticated(w, r, cookies)
}

// unauthenticated answers the one 401 body, whatever the reason.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request, clearCookies bool) {
	if clearCookies {
		s.clearSessionCookies(w, r)
	}
	writeJSON(w, http.StatusUnauthorized, errorEnvelope(events.ErrUnauthenticated))
}

// isAuthFailure reports whether an error from auth means the credentials are bad
// (as opposed to auth being unavailable).
func isAuthFailure(err error) bool {
	var e *events.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status() == http.StatusUnauthorized || e.Status() == http.StatusBadRequest ||
		e.Status() == http.StatusNotFound || e.Status() == http.StatusConflict
}

// bearerToken reads "Bearer <token>" from an Authorization header.
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > authtoken.MaxTokenBytes {
		return "", false
	}
	return token, true
}

// cookieName is the name of a session cookie for this request's scheme.
func (s *Server) cookieName(r *http.Request, base string) string {
	if s.secure(r) {
		return hostPrefix + base
	}
	return base
}

// cookie returns a session cookie's value, or "" (also for oversized values). Over
// HTTPS only the __Host- cookie counts, which a sibling subdomain cannot plant.
func (s *Server) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(s.cookieName(r, base))
	if err != nil || len(c.Value) > authtoken.MaxTokenBytes {
		return ""
	}
	return c.Value
}

// refreshSession rotates a refresh token with the auth service.
func (s *Server) refreshSession(ctx context.Context, r *http.Request, refreshToken string) (events.Session, error) {
	if len(refreshToken) > maxRefreshTokenSize {
		return events.Session{}, events.ErrUnauthenticated
	}
	return call[events.RefreshRequest, events.Session](ctx, s.nc, s.opts.AuthTimeout, events.SubjectAuthRefresh,
		events.RefreshRequest{RefreshToken: refreshToken, ClientIP: middleware.GetClientIP(r.Context())})
}

// setSessionCookies stores a session in the two HttpOnly SameSite=Strict cookies.
func (s *Server) setSessionCookies(w http.ResponseWriter, r *http.Request, sess events.Session) {
	now := time.Now()
	s.setCookie(w, r, cookieAccess, sess.AccessToken, maxAge(sess.ExpiresAt, now))
	s.setCookie(w, r, cookieRefresh, sess.RefreshToken, maxAge(sess.RefreshExpiresAt, now))
}

// clearSessionCookies removes both session cookies.
func (s *Server) clearSessionCookies(w http.ResponseWriter, r *http.Request) {
	s.setCookie(w, r, cookieAccess, "", -1)
	s.setCookie(w, r, cookieRefresh, "", -1)
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, base, value string, age int) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(r, base),
		Value:    value,
		Path:     "/",
		MaxAge:   age,
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// maxAge is the cookie Max-Age for an expiry time (at least one second).
func maxAge(exp, now time.Time) int {
	return max(int(exp.Sub(now)/time.Second), 1)
}
