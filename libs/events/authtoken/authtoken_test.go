package authtoken_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
)

func sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func claims(edit func(*authtoken.Claims)) *authtoken.Claims {
	now := time.Now()
	c := &authtoken.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    events.TokenIssuer,
			Audience:  jwt.ClaimStrings{events.TokenAudience},
			Subject:   "user-1",
			ID:        "jti-1",
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
		},
		SessionID: "session-1",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestVerify(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	var v authtoken.Verifier
	if _, err := v.Verify("anything"); !errors.Is(err, authtoken.ErrInvalidToken) {
		t.Errorf("zero Verifier accepted a token")
	}
	v.SetKeys([]events.PublicKey{
		{KID: "k1", Alg: events.TokenAlg, Key: pub},
		{KID: "bad", Alg: "HS256", Key: pub},
		{KID: "short", Alg: events.TokenAlg, Key: pub[:10]},
	})
	if !v.HasKey("k1") || v.HasKey("bad") || v.HasKey("short") {
		t.Errorf("key set holds the wrong keys")
	}
	hdr := map[string]any{"kid": "k1", "typ": events.TokenType}
	good := sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(nil))
	c, err := v.Verify(good)
	if err != nil || c.Subject != "user-1" || c.SessionID != "session-1" {
		t.Fatalf("Verify(good) = %+v, %v", c, err)
	}
	if v.UnknownKey(good) {
		t.Errorf("UnknownKey(good) = true")
	}
	bad := map[string]string{
		"other key":   sign(t, jwt.SigningMethodEdDSA, otherPriv, hdr, claims(nil)),
		"unknown kid": sign(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": "k2", "typ": events.TokenType}, claims(nil)),
		"hs256":       sign(t, jwt.SigningMethodHS256, []byte(pub), hdr, claims(nil)),
		"none":        sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, claims(nil)),
		"typ JWT":     sign(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": "k1", "typ": "JWT"}, claims(nil)),
		"wrong iss":   sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.Issuer = "x" })),
		"wrong aud":   sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.Audience = jwt.ClaimStrings{"x"} })),
		"no exp":      sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.ExpiresAt = nil })),
		"expired":     sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-31 * time.Second)) })),
		"future iat":  sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Minute)) })),
		"no iat":      sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.IssuedAt = nil })),
		"no sid":      sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.SessionID = "" })),
		"no jti":      sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.ID = "" })),
		"too large":   good + strings.Repeat("a", authtoken.MaxTokenBytes),
		"not a jwt":   "abc",
	}
	for name, tok := range bad {
		if c, err := v.Verify(tok); err != authtoken.ErrInvalidToken || c != nil {
			t.Errorf("%s: Verify = %+v, %v; want nil, ErrInvalidToken", name, c, err)
		}
	}
	if !v.UnknownKey(bad["unknown kid"]) || v.UnknownKey("garbage") {
		t.Errorf("UnknownKey does not tell an unknown kid")
	}
	// Within the leeway an expired token still verifies.
	within := sign(t, jwt.SigningMethodEdDSA, priv, hdr, claims(func(c *authtoken.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-10 * time.Second)) }))
	if _, err := v.Verify(within); err != nil {
		t.Errorf("token 10 s past exp (within leeway): %v", err)
	}
	if kid, ok := authtoken.KeyID(good); !ok || kid != "k1" {
		t.Errorf("KeyID = %q, %v", kid, ok)
	}
}
