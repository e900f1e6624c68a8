package events

import "time"

// Access-token profile shared by the auth service (which signs) and every verifier.
const (
	TokenIssuer   = "parley-auth"
	TokenAudience = "parley-gateway"
	TokenType     = "at+jwt"
	TokenAlg      = "EdDSA"
)

// User is a user account as every client sees it. It never carries a password hash.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email"`
	Firstname string    `json:"firstname"`
	Lastname  string    `json:"lastname"`
	CreatedAt time.Time `json:"created_at"`
}

// SignupRequest creates an account (subject SubjectAuthSignup).
type SignupRequest struct {
	Username  string `json:"username"`
	Email     string `json:"email"`
	Password  string `json:"password"`
	Firstname string `json:"firstname"`
	Lastname  string `json:"lastname"`
	ClientIP  string `json:"client_ip,omitempty"`
}

// UserReply carries one user.
type UserReply struct {
	User User `json:"user"`
}

// LoginRequest starts a session (subject SubjectAuthLogin). Username may be the email.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ClientIP string `json:"client_ip,omitempty"`
}

// Session is what login and refresh hand back: a short-lived access token and an opaque
// rotating refresh token.
type Session struct {
	User             User      `json:"user"`
	SessionID        string    `json:"session_id"`
	AccessToken      string    `json:"access_token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

// RefreshRequest rotates a refresh token (subject SubjectAuthRefresh).
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
	ClientIP     string `json:"client_ip,omitempty"`
}

// LogoutRequest ends a session, or every session of the user when Everywhere is set
// (subject SubjectAuthLogout).
type LogoutRequest struct {
	UserID     string `json:"user_id"`
	SessionID  string `json:"session_id"`
	Everywhere bool   `json:"everywhere,omitempty"`
}

// UserRequest asks for one user by id (subject SubjectAuthMe).
type UserRequest struct {
	UserID string `json:"user_id"`
}

// PublicKey is one token-verification key, published by auth.
type PublicKey struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// Key is the raw Ed25519 public key.
	Key []byte `json:"key"`
}

// KeysReply lists the keys that verify currently valid access tokens
// (subject SubjectAuthKeys). Old keys stay until their tokens have expired.
type KeysReply struct {
	Keys []PublicKey `json:"keys"`
}

// Empty is the payload of requests that carry nothing.
type Empty struct{}
