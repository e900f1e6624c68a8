package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/parley-chat/parley/services/auth/internal/token"
)

// refreshTokenLen is the length of a refresh token: 256 bits, base64url without padding.
const refreshTokenLen = 43

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// successorOf derives the refresh token that replaces tok. Deriving it (instead of
// drawing it at random) lets a retry of tok inside the grace window get the same
// successor back while only token hashes are stored; without the session's secret,
// which never leaves the database, nobody can compute it.
func successorOf(secret []byte, tok string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("parley refresh successor\x00"))
	m.Write([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func wellFormedRefresh(tok string) bool {
	if len(tok) != refreshTokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil
}

// startSession creates a session for u and issues its first tokens.
func (s *Service) startSession(ctx context.Context, u User, clientIP string) (Issued, error) {
	now := s.now().Truncate(timePrecision)
	id, err := uuid.NewV7()
	if err != nil {
		return Issued{}, fmt.Errorf("new session id: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Issued{}, fmt.Errorf("read session secret: %w", err)
	}
	rt, err := randomToken()
	if err != nil {
		return Issued{}, err
	}
	if len(clientIP) > 64 {
		clientIP = clientIP[:64]
	}
	sess := Session{
		ID:            id.String(),
		UserID:        u.ID,
		CreatedAt:     now,
		LastUsedAt:    now,
		ExpiresAt:     now.Add(s.cfg.AbsoluteTimeout),
		ClientIP:      clientIP,
		RefreshSecret: secret,
	}
	if err := s.store.CreateSession(ctx, sess, hashToken(rt)); err != nil {
		return Issued{}, fmt.Errorf("store session: %w", err)
	}
	return s.issue(u, sess, rt, now)
}

// issue signs an access token for sess and packs it with refresh token rt.
func (s *Service) issue(u User, sess Session, rt string, now time.Time) (Issued, error) {
	k := s.key.Load()
	if k == nil {
		return Issued{}, errors.New("no signing key loaded")
	}
	exp := now.Add(s.cfg.AccessTTL)
	at, err := token.Sign(k.KID, k.Private, u.ID, sess.ID, now, exp)
	if err != nil {
		return Issued{}, err
	}
	refreshExp := now.Add(s.cfg.IdleTimeout)
	if sess.ExpiresAt.Before(refreshExp) {
		refreshExp = sess.ExpiresAt
	}
	return Issued{
		User:             u,
		SessionID:        sess.ID,
		AccessToken:      at,
		ExpiresAt:        exp,
		RefreshToken:     rt,
		RefreshExpiresAt: refreshExp,
	}, nil
}

// Refresh rotates refresh token rt: it answers a new access token and rt's successor.
// A repeat of rt within the grace window answers the same successor (two tabs, a lost
// response); a repeat after it means the token was stolen or replayed, and the whole
// session is revoked. Every refusal is ErrUnauthenticated.
func (s *Service) Refresh(ctx context.Context, rt string) (Issued, error) {
	if !wellFormedRefresh(rt) {
		return Issued{}, ErrUnauthenticated
	}
	now := s.now().Truncate(timePrecision)
	h := hashToken(rt)
	rec, err := s.store.RefreshToken(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return Issued{}, ErrUnauthenticated
	}
	if err != nil {
		return Issued{}, fmt.Errorf("find refresh token: %w", err)
	}
	sess := rec.Session
	if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) || !now.Before(sess.LastUsedAt.Add(s.cfg.IdleTimeout)) {
		return Issued{}, ErrUnauthenticated
	}
	if len(sess.RefreshSecret) == 0 {
		return Issued{}, ErrUnauthenticated
	}
	next := successorOf(sess.RefreshSecret, rt)
	nextHash := hashToken(next)
	if rec.UsedAt == nil {
		err := s.store.RotateRefresh(ctx, sess.ID, h, nextHash, now)
		switch {
		case err == nil:
			return s.issueFor(ctx, sess, next, now)
		case errors.Is(err, ErrSessionEnded):
			return Issued{}, ErrUnauthenticated
		case !errors.Is(err, ErrRefreshUsed):
			return Issued{}, fmt.Errorf("rotate refresh token: %w", err)
		}
		// Another request rotated it first: read what it stored.
		if rec, err = s.store.RefreshToken(ctx, h); err != nil {
			return Issued{}, fmt.Errorf("reread refresh token: %w", err)
		}
		if rec.UsedAt == nil {
			return Issued{}, errors.New("refresh token neither rotated nor used")
		}
	}
	if now.Sub(*rec.UsedAt) <= s.cfg.ReuseGrace && bytes.Equal(rec.SuccessorHash, nextHash) {
		if err := s.store.TouchSession(ctx, sess.ID, now); err != nil {
			return Issued{}, fmt.Errorf("touch session: %w", err)
		}
		return s.issueFor(ctx, sess, next, now)
	}
	s.log.WarnContext(ctx, "refresh token reuse detected: session revoked",
		"user_id", sess.UserID, "session_id", sess.ID, "used_at", *rec.UsedAt)
	if err := s.endSession(ctx, sess.UserID, sess.ID, now); err != nil {
		return Issued{}, err
	}
	return Issued{}, ErrUnauthenticated
}

func (s *Service) issueFor(ctx context.Context, sess Session, rt string, now time.Time) (Issued, error) {
	u, err := s.store.UserByID(ctx, sess.UserID)
	if errors.Is(err, ErrNotFound) {
		return Issued{}, ErrUnauthenticated
	}
	if err != nil {
		return Issued{}, fmt.Errorf("find session user: %w", err)
	}
	return s.issue(u, sess, rt, now)
}

// endSession revokes one session in the database and in the revocation bucket.
func (s *Service) endSession(ctx context.Context, userID, sessionID string, now time.Time) error {
	if err := s.store.RevokeSession(ctx, userID, sessionID, now); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if err := s.revoker.RevokeSession(ctx, sessionID, now); err != nil {
		return fmt.Errorf("publish session revocation: %w", err)
	}
	return nil
}

// Logout ends the session sessionID of userID, or every session of the user when
// everywhere is set. Access tokens already issued stop working at once on every
// verifier (through the revocation bucket); refresh tokens stop working at once.
func (s *Service) Logout(ctx context.Context, userID, sessionID string, everywhere bool) error {
	if userID == "" || (sessionID == "" && !everywhere) {
		return ErrUnauthenticated
	}
	now := s.now().Truncate(timePrecision)
	if everywhere {
		if err := s.store.RevokeUserSessions(ctx, userID, now); err != nil {
			return fmt.Errorf("revoke user sessions: %w", err)
		}
		if err := s.revoker.RevokeUser(ctx, userID, now); err != nil {
			return fmt.Errorf("publish user revocation: %w", err)
		}
		s.log.InfoContext(ctx, "user logged out everywhere", "user_id", userID)
		// Access tokens carry iat in whole seconds and those issued before now are
		// refused: answer only once the second of now is over, so that a login made
		// after this reply (iat >= the next second) is never mistaken for an old one.
		wait := min(max(now.Truncate(time.Second).Add(time.Second).Sub(s.now()), 0), time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		return nil
	}
	err := s.endSession(ctx, userID, sessionID, now)
	if errors.Is(err, ErrNotFound) {
		return ErrUnauthenticated
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "user logged out", "user_id", userID, "session_id", sessionID)
	return nil
}

// SessionUser returns the user userID, signed in with session sessionID. A missing
// user (a token that outlived its account) or a session that was logged out is
// ErrUnauthenticated: auth does not rely on the gateway alone to refuse revoked tokens.
func (s *Service) SessionUser(ctx context.Context, userID, sessionID string) (User, error) {
	if userID == "" || sessionID == "" {
		return User{}, ErrUnauthenticated
	}
	u, err := s.store.UserInSession(ctx, userID, sessionID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUnauthenticated
	}
	if err != nil {
		return User{}, fmt.Errorf("find user: %w", err)
	}
	return u, nil
}
