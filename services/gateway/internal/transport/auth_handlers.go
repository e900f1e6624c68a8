package transport

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/parley-chat/parley/libs/events"
)

type signupBody struct {
	Username  string `json:"username"`
	Email     string `json:"email"`
	Password  string `json:"password"`
	Firstname string `json:"firstname"`
	Lastname  string `json:"lastname"`
}

type loginBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type refreshBody struct {
	RefreshToken string `json:"refresh_token"`
}

// loginResponse is what login answers; the refresh token is there for API clients
// (the browser keeps it in its HttpOnly cookie and ignores the body's copy).
type loginResponse struct {
	User             events.User `json:"user"`
	AccessToken      string      `json:"access_token"`
	ExpiresAt        time.Time   `json:"expires_at"`
	RefreshToken     string      `json:"refresh_token,omitempty"`
	RefreshExpiresAt *time.Time  `json:"refresh_expires_at,omitempty"`
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) error {
	var b signupBody
	if err := decode(r, &b, false); err != nil {
		return err
	}
	rep, err := call[events.SignupRequest, events.UserReply](r.Context(), s.nc, s.opts.PasswordTimeout, events.SubjectAuthSignup,
		events.SignupRequest{Username: b.Username, Email: b.Email, Password: b.Password,
			Firstname: b.Firstname, Lastname: b.Lastname, ClientIP: middleware.GetClientIP(r.Context())})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rep)
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var b loginBody
	if err := decode(r, &b, false); err != nil {
		return err
	}
	sess, err := call[events.LoginRequest, events.Session](r.Context(), s.nc, s.opts.PasswordTimeout, events.SubjectAuthLogin,
		events.LoginRequest{Username: b.Username, Password: b.Password, ClientIP: middleware.GetClientIP(r.Context())})
	if err != nil {
		return err
	}
	s.setSessionCookies(w, r, sess)
	writeJSON(w, http.StatusOK, loginResponse{User: sess.User, AccessToken: sess.AccessToken, ExpiresAt: sess.ExpiresAt,
		RefreshToken: sess.RefreshToken, RefreshExpiresAt: &sess.RefreshExpiresAt})
	return nil
}

// refresh rotates a refresh token given in the body (API clients: the new one comes
// back in the body) or in the cookie (browsers: new cookies).
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	var b refreshBody
	if err := decode(r, &b, true); err != nil {
		return err
	}
	fromCookie := b.RefreshToken == ""
	token := b.RefreshToken
	if fromCookie {
		token = s.cookie(r, cookieRefresh)
	}
	if token == "" {
		return events.ErrUnauthenticated
	}
	sess, err := s.refreshSession(r.Context(), r, token)
	if err != nil {
		if isAuthFailure(err) {
			if fromCookie {
				s.clearSessionCookies(w, r)
			}
			return events.ErrUnauthenticated
		}
		return err
	}
	if fromCookie {
		s.setSessionCookies(w, r, sess)
		writeJSON(w, http.StatusOK, loginResponse{User: sess.User, AccessToken: sess.AccessToken, ExpiresAt: sess.ExpiresAt})
		return nil
	}
	writeJSON(w, http.StatusOK, loginResponse{User: sess.User, AccessToken: sess.AccessToken, ExpiresAt: sess.ExpiresAt,
		RefreshToken: sess.RefreshToken, RefreshExpiresAt: &sess.RefreshExpiresAt})
	return nil
}

// logout ends the caller's session. This replica refuses its tokens at once; auth
// records the revocation for every other replica.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	return s.endSessions(w, r, false)
}

// logoutAll ends every session of the caller ("log out everywhere").
func (s *Server) logoutAll(w http.ResponseWriter, r *http.Request) error {
	return s.endSessions(w, r, true)
}

func (s *Server) endSessions(w http.ResponseWriter, r *http.Request, everywhere bool) error {
	p := mustPrincipal(r)
	now := time.Now()
	s.guard.RevokeSession(p.SessionID, now)
	if everywhere {
		s.guard.RevokeUser(p.UserID, now)
	}
	s.clearSessionCookies(w, r)
	w.Header().Set("Clear-Site-Data", `"cookies"`)
	_, err := call[events.LogoutRequest, struct{}](r.Context(), s.nc, s.opts.AuthTimeout, events.SubjectAuthLogout,
		events.LogoutRequest{UserID: p.UserID, SessionID: p.SessionID, Everywhere: everywhere})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	rep, err := call[events.UserRequest, events.UserReply](r.Context(), s.nc, s.opts.AuthTimeout, events.SubjectAuthMe,
		events.UserRequest{UserID: p.UserID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) error {
	rep, err := call[events.Empty, events.ModelsReply](r.Context(), s.nc, s.opts.AuthTimeout, events.SubjectModelsList, events.Empty{})
	if err != nil {
		return err
	}
	if rep.Models == nil {
		rep.Models = []events.Model{}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
