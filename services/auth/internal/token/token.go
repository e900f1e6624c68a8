// Package token signs access tokens: EdDSA (Ed25519) JWTs with header kid and
// typ "at+jwt", carrying the claims authtoken.Verifier checks.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
)

// Sign returns an access token for userID's session sessionID, issued at iat and
// expiring at exp, signed with key under kid. Its jti is 128 random bits.
func Sign(kid string, key ed25519.PrivateKey, userID, sessionID string, iat, exp time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("read jti: %w", err)
	}
	claims := authtoken.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    events.TokenIssuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{events.TokenAudience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		SessionID: sessionID,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	t.Header["typ"] = events.TokenType
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}
