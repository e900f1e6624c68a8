// Package authtoken verifies the access tokens the auth service signs: EdDSA (Ed25519)
// JWTs with header typ "at+jwt" and a kid naming one of the keys auth publishes on
// events.SubjectAuthKeys. The gateway (and any service re-verifying a forwarded token)
// holds a Verifier; only the auth service holds signing keys.
package authtoken

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/libs/events"
)

// MaxTokenBytes bounds the size of a token Verify will look at; larger input is refused
// before any parsing (a real token is well under 1 KiB).
const MaxTokenBytes = 4096

// Leeway is the clock skew allowed on exp and iat.
const Leeway = 30 * time.Second

// ErrInvalidToken is the one error Verify returns, whatever was wrong with the token,
// so that no detail of a failed check reaches a client.
var ErrInvalidToken = errors.New("invalid access token")

// Claims are the claims of an access token: iss, aud, sub (user id), jti, iat, exp and
// the session id.
type Claims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// Validate implements jwt.ClaimsValidator: the claims every access token must carry
// beyond those the parser checks itself.
func (c *Claims) Validate() error {
	if c.Subject == "" || c.SessionID == "" || c.ID == "" || c.IssuedAt == nil {
		return errors.New("missing sub, sid, jti or iat")
	}
	return nil
}

// Verifier checks access tokens against a set of Ed25519 public keys, by kid. It is
// safe for concurrent use; its zero value holds no keys and accepts nothing.
type Verifier struct {
	mu   sync.RWMutex
	keys map[string]ed25519.PublicKey
}

// NewVerifier returns a Verifier holding keys.
func NewVerifier(keys []events.PublicKey) *Verifier {
	v := &Verifier{}
	v.SetKeys(keys)
	return v
}

// SetKeys replaces the key set. Keys that are not Ed25519 public keys are ignored.
func (v *Verifier) SetKeys(keys []events.PublicKey) {
	m := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		if k.KID == "" || k.Alg != events.TokenAlg || len(k.Key) != ed25519.PublicKeySize {
			continue
		}
		m[k.KID] = ed25519.PublicKey(append([]byte(nil), k.Key...))
	}
	v.mu.Lock()
	v.keys = m
	v.mu.Unlock()
}

// HasKey reports whether the verifier holds a key with this kid.
func (v *Verifier) HasKey(kid string) bool {
	_, ok := v.key(kid)
	return ok
}

// UnknownKey reports whether token is a well-formed token whose header names a kid
// the verifier does not hold: the caller should fetch the key set again (rate-limited)
// and retry. It verifies nothing.
func (v *Verifier) UnknownKey(token string) bool {
	kid, ok := KeyID(token)
	return ok && !v.HasKey(kid)
}

// KeyID returns the kid from token's header without verifying anything, and whether
// the header could be read.
func KeyID(token string) (string, bool) {
	if len(token) > MaxTokenBytes {
		return "", false
	}
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.KID == "" {
		return "", false
	}
	return h.KID, true
}

func (v *Verifier) key(kid string) (ed25519.PublicKey, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok := v.keys[kid]
	return k, ok
}

// Verify checks token's signature (EdDSA only, with the key its kid names), its typ
// header, iss, aud, a required exp, an iat not in the future, sub, sid and jti, with
// Leeway of clock skew. Every failure is ErrInvalidToken.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return nil, ErrInvalidToken
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{events.TokenAlg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(events.TokenIssuer),
		jwt.WithAudience(events.TokenAudience),
		jwt.WithLeeway(Leeway),
	)
	claims := &Claims{}
	tok, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != events.TokenType {
			return nil, ErrInvalidToken
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := v.key(kid)
		if !ok {
			return nil, ErrInvalidToken
		}
		return k, nil
	})
	if err != nil || !tok.Valid {
		return nil, ErrInvalidToken
	}
	return claims, nil
}
