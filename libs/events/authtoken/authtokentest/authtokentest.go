// Package authtokentest stands in for the auth service's token keys in component
// tests: an Issuer answers events.SubjectAuthKeys with a fresh Ed25519 key and signs
// access tokens with it exactly as auth does, so a service that verifies forwarded
// user tokens can be called like the gateway calls it.
package authtokentest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/events"
)

// Issuer signs access tokens with a key it serves on events.SubjectAuthKeys.
type Issuer struct {
	kid  string
	priv ed25519.PrivateKey
}

// New returns an Issuer of a fresh key, served nowhere yet.
func New(t testing.TB) *Issuer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{kid: "test-" + random(4), priv: priv}
}

// Serve is New followed by ServeOn.
func Serve(t testing.TB, nc *nats.Conn) *Issuer {
	t.Helper()
	i := New(t)
	i.ServeOn(t, nc)
	return i
}

// ServeOn answers events.SubjectAuthKeys on nc with the Issuer's key until the test
// ends (the subscription survives reconnects), and creates the revoked-sessions bucket
// (empty), as the auth service does at start.
func (i *Issuer) ServeOn(t testing.TB, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateKeyValue(ctx, events.RevokedSessionsBucket(16*time.Minute, 1)); err != nil {
		t.Fatalf("create the revoked-sessions bucket: %v", err)
	}
	pub := i.priv.Public().(ed25519.PublicKey)
	body, err := json.Marshal(events.KeysReply{Keys: []events.PublicKey{{KID: i.kid, Alg: events.TokenAlg, Key: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.Subscribe(events.SubjectAuthKeys, func(m *nats.Msg) { _ = m.Respond(body) })
	if err != nil {
		t.Fatalf("serve token keys: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("serve token keys: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// Token returns a valid 10-minute access token for userID.
func (i *Issuer) Token(userID string) string {
	now := time.Now()
	return i.Sign(map[string]any{
		"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": userID, "sid": random(16),
		"jti": random(16), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
}

// Sign signs any claims with the served key (header alg EdDSA, typ at+jwt, its kid).
func (i *Issuer) Sign(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": events.TokenAlg, "typ": events.TokenType, "kid": i.kid}) + "." + enc(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(i.priv, []byte(input)))
}

// Context returns ctx carrying a token for userID, which events.Request forwards.
func (i *Issuer) Context(ctx context.Context, userID string) context.Context {
	return events.WithUserToken(ctx, i.Token(userID))
}

// ContextFor returns ctx carrying a token for the user_id of payload (a chat request),
// as the gateway forwards the token of the user it names; a payload without user_id
// leaves ctx as it is.
func (i *Issuer) ContextFor(ctx context.Context, payload any) context.Context {
	b, err := json.Marshal(payload)
	if err != nil {
		return ctx
	}
	var p struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(b, &p) != nil || p.UserID == "" {
		return ctx
	}
	return i.Context(ctx, p.UserID)
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
