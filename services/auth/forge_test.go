package auth_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/libs/events"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func goodClaims(userID, sessionID string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": events.TokenIssuer,
		"aud": []string{events.TokenAudience},
		"sub": userID,
		"sid": sessionID,
		"jti": "test-jti",
		"iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
	}
}

func sign(t *testing.T, kid string, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	method := jwt.SigningMethod(jwt.SigningMethodEdDSA)
	switch key.(type) {
	case []byte:
		method = jwt.SigningMethodHS256
	case nil:
		method = jwt.SigningMethodNone
		key = jwt.UnsafeAllowNoneSignatureType
	}
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// forgedTokens returns tokens that must all be refused: each differs from a valid one
// in one way, most signed with the genuine key.
// It also returns a control token made the same way with nothing wrong.
func forgedTokens(t *testing.T, valid, kid string, priv ed25519.PrivateKey, userID, sessionID string) (string, map[string]string) {
	t.Helper()
	typ := map[string]any{"typ": events.TokenType}
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := goodClaims(userID, sessionID)
		edit(c)
		return c
	}
	parts := strings.Split(valid, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	tampered := strings.Replace(string(payload), userID, "0190ffff-0000-7000-8000-000000000000", 1)
	pub := priv.Public().(ed25519.PublicKey)

	control := sign(t, kid, priv, typ, goodClaims(userID, sessionID))
	return control, map[string]string{
		"tampered payload":  parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(tampered)) + "." + parts[2],
		"swapped signature": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)),
		"alg none":          sign(t, kid, nil, typ, goodClaims(userID, sessionID)),
		"alg none stripped": parts[0] + "." + parts[1] + ".",
		"hs256 public key":  sign(t, kid, []byte(pub), typ, goodClaims(userID, sessionID)),
		"wrong audience":    sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else"} })),
		"no audience":       sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { delete(c, "aud") })),
		"wrong issuer":      sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { c["iss"] = "evil" })),
		"expired":           sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })),
		"missing exp":       sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { delete(c, "exp") })),
		"iat in the future": sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() })),
		"missing sid":       sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { delete(c, "sid") })),
		"missing sub":       sign(t, kid, priv, typ, with(func(c jwt.MapClaims) { delete(c, "sub") })),
		"wrong typ":         sign(t, kid, priv, map[string]any{"typ": "JWT"}, goodClaims(userID, sessionID)),
		"missing typ":       sign(t, kid, priv, map[string]any{"typ": nil}, goodClaims(userID, sessionID)),
		"unknown kid":       sign(t, "unknown-kid", priv, typ, goodClaims(userID, sessionID)),
		"missing kid":       sign(t, kid, priv, map[string]any{"typ": events.TokenType, "kid": nil}, goodClaims(userID, sessionID)),
		"oversized":         valid + strings.Repeat("A", 4096),
		"garbage":           "not.a.jwt",
		"empty":             "",
	}
}
