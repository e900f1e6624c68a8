// Package app holds the auth service's use cases: signup, login, refresh, logout, user
// lookup and signing-key management, with the policies around them (validation,
// password rules, login throttling, session timeouts, refresh-token rotation). It knows
// nothing of NATS, HTTP or SQL: storage and revocation broadcasting are interfaces that
// the store and transport packages implement.
package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/services/auth/internal/password"
)

// Errors the use cases return. The transport maps each to a client-visible code;
// anything else is an internal error.
var (
	ErrNotFound           = errors.New("not found")
	ErrUsernameTaken      = errors.New("username taken")
	ErrEmailTaken         = errors.New("email taken")
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrUnauthenticated    = errors.New("unauthenticated")
	// ErrRefreshUsed is returned by Store.RotateRefresh when the token was used already.
	ErrRefreshUsed = errors.New("refresh token already used")
	// ErrSessionEnded is returned by Store.RotateRefresh when the session was revoked.
	ErrSessionEnded = errors.New("session ended")
	// ErrUnavailable means the database cannot be reached for now; the client may retry.
	ErrUnavailable = errors.New("unavailable")
)

// ValidationError names the input field that is wrong and says why, in words a person
// can read.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Message }

// ThrottledError means the attempt was refused without checking the password; the
// client may try again after RetryAfter.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many attempts, retry after %s", e.RetryAfter)
}

// User is an account, without its password hash.
type User struct {
	ID        string
	Username  string
	Email     string
	Firstname string
	Lastname  string
	CreatedAt time.Time
}

// Session is a signed-in session of one user.
type Session struct {
	ID         string
	UserID     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
	ClientIP   string
	// RefreshSecret derives each refresh token's successor (see successorOf).
	RefreshSecret []byte
}

// RefreshRecord is a stored refresh token (by hash) with its session.
type RefreshRecord struct {
	TokenHash     []byte
	UsedAt        *time.Time
	SuccessorHash []byte
	Session       Session
}

// ThrottleState is the failed-login bookkeeping of one account key.
type ThrottleState struct {
	Failures       int
	WindowStart    time.Time
	WindowFailures int
	BlockedUntil   time.Time
	UpdatedAt      time.Time
}

// SigningKey is an Ed25519 token-signing key.
type SigningKey struct {
	KID       string
	Private   ed25519.PrivateKey
	CreatedAt time.Time
	RetiredAt *time.Time
}

// PublicKey is the verification half of a signing key.
type PublicKey struct {
	KID string
	Key ed25519.PublicKey
}

// Issued is what login and refresh hand back.
type Issued struct {
	User             User
	SessionID        string
	AccessToken      string
	ExpiresAt        time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
}

// Store is the auth service's storage.
type Store interface {
	// UsersTaken reports whether username or email is already used (case-insensitively).
	UsersTaken(ctx context.Context, username, email string) (usernameTaken, emailTaken bool, err error)
	// CreateUser stores a user; ErrUsernameTaken or ErrEmailTaken on a duplicate.
	CreateUser(ctx context.Context, u User, passwordHash string) error
	// UserByLogin finds a user by username, or by email when login holds an '@'.
	UserByLogin(ctx context.Context, login string) (User, string, error)
	UserByID(ctx context.Context, id string) (User, error)
	// UserInSession finds user id if sessionID is its session and not revoked
	// (ErrNotFound otherwise).
	UserInSession(ctx context.Context, id, sessionID string) (User, error)
	UpdatePasswordHash(ctx context.Context, userID, passwordHash string) error

	LoginThrottle(ctx context.Context, key []byte) (ThrottleState, error)
	// UpdateLoginThrottle runs fn on the state of key (zero when none) under a row lock
	// and stores the result.
	UpdateLoginThrottle(ctx context.Context, key []byte, fn func(ThrottleState) ThrottleState) (ThrottleState, error)
	ClearLoginThrottle(ctx context.Context, key []byte) error

	CreateSession(ctx context.Context, s Session, refreshHash []byte) error
	RefreshToken(ctx context.Context, tokenHash []byte) (RefreshRecord, error)
	// RotateRefresh marks oldHash used with successor newHash (only if it was unused:
	// ErrRefreshUsed otherwise), stores newHash and touches the session (ErrSessionEnded
	// when it was revoked), in one transaction.
	RotateRefresh(ctx context.Context, sessionID string, oldHash, newHash []byte, now time.Time) error
	TouchSession(ctx context.Context, sessionID string, now time.Time) error
	// RevokeSession revokes one session of userID (ErrNotFound when there is none).
	RevokeSession(ctx context.Context, userID, sessionID string, now time.Time) error
	// RevokeUserSessions revokes every session of userID and sets its tokens_not_before.
	RevokeUserSessions(ctx context.Context, userID string, now time.Time) error

	// WithKeyLock runs fn holding a lock shared by every replica on the same database.
	WithKeyLock(ctx context.Context, fn func(context.Context) error) error
	// CurrentKey returns the newest signing key not retired (ErrNotFound when none).
	CurrentKey(ctx context.Context) (SigningKey, error)
	// AddKey stores k and retires every other key, at k.CreatedAt.
	AddKey(ctx context.Context, k SigningKey) error
	// VerificationKeys returns keys not retired or retired after retiredAfter.
	VerificationKeys(ctx context.Context, retiredAfter time.Time) ([]SigningKey, error)

	// DeleteExpired removes sessions (and their refresh tokens) that ended before
	// before, throttle rows untouched since before, and keys retired before before.
	DeleteExpired(ctx context.Context, before time.Time) error
}

// Revoker tells every verifier at once that access tokens stopped being valid.
type Revoker interface {
	RevokeSession(ctx context.Context, sessionID string, at time.Time) error
	RevokeUser(ctx context.Context, userID string, at time.Time) error
}

// Config holds the policies of the use cases.
type Config struct {
	AccessTTL       time.Duration
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	// ReuseGrace is how long a used refresh token still returns its successor.
	ReuseGrace time.Duration
	// KeyMaxAge rotates the signing key when it is older (0: never by age).
	KeyMaxAge time.Duration
	// RotateKey makes New start a new signing key.
	RotateKey bool
	// IPPerMinute and IPBurst bound login and signup attempts per client IP (0: off).
	IPPerMinute int
	IPBurst     int
}

// Service runs the use cases.
type Service struct {
	cfg       Config
	store     Store
	revoker   Revoker
	hasher    *password.Hasher
	log       *slog.Logger
	now       func() time.Time
	common    map[string]struct{}
	dummyHash string
	ip        *ipLimiter
	key       atomic.Pointer[SigningKey]
}

// New builds the service: it loads the common-password list, makes the dummy hash
// that unknown-user logins check against, and makes sure a signing key exists
// (rotating it when cfg.RotateKey is set or it is older than cfg.KeyMaxAge).
func New(ctx context.Context, cfg Config, store Store, revoker Revoker, hasher *password.Hasher, log *slog.Logger) (*Service, error) {
	s := &Service{
		cfg:     cfg,
		store:   store,
		revoker: revoker,
		hasher:  hasher,
		log:     log,
		now:     func() time.Time { return time.Now().UTC() },
		common:  commonPasswords(),
		ip:      newIPLimiter(cfg.IPPerMinute, cfg.IPBurst),
	}
	dummy := make([]byte, 24)
	if _, err := rand.Read(dummy); err != nil {
		return nil, fmt.Errorf("read dummy password: %w", err)
	}
	h, err := hasher.Hash(ctx, base64.RawURLEncoding.EncodeToString(dummy))
	if err != nil {
		return nil, fmt.Errorf("make dummy hash: %w", err)
	}
	s.dummyHash = h
	if err := s.ensureKey(ctx, cfg.RotateKey); err != nil {
		return nil, err
	}
	return s, nil
}
