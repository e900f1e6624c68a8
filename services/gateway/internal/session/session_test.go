package session

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
)

// newTestGuard runs a guard on an embedded NATS whose key source serves one fresh key,
// and returns it with that key's signer.
func newTestGuard(t *testing.T) (*Guard, func(jwt.MapClaims) string) {
	t.Helper()
	ns := testnats.New(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const kid = "k1"
	if _, err := nc.Subscribe(events.SubjectAuthKeys, func(m *nats.Msg) {
		body, _ := json.Marshal(events.KeysReply{Keys: []events.PublicKey{{KID: kid, Alg: events.TokenAlg, Key: pub}}})
		_ = m.Respond(body)
	}); err != nil {
		t.Fatal(err)
	}
	g := New(nc, js, slog.New(slog.DiscardHandler), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); g.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("guard not ready: %v", g.Ready())
		}
	}
	sign := func(c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = kid
		tok.Header["typ"] = events.TokenType
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return g, sign
}

func claimsFor(user, session string, iat time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": user, "sid": session,
		"jti": user + session + iat.String(), "iat": iat.Unix(), "exp": iat.Add(15 * time.Minute).Unix()}
}

// TestCheck: a good token passes (and again, from the keyring's cache); revocations
// of its session or its user apply to it at once, cached or not; a token of another
// key is refused. The keyring's own cache is tested in libs/events/authtoken.
func TestCheck(t *testing.T) {
	g, sign := newTestGuard(t)
	ctx := context.Background()
	now := time.Now()
	tokA := sign(claimsFor("ua", "sa", now))
	tokB := sign(claimsFor("ub", "sb", now.Add(-time.Minute)))
	tokC := sign(claimsFor("uc", "sc", now))
	for range 2 {
		for _, tok := range []string{tokA, tokB, tokC} {
			if _, err := g.Check(ctx, tok); err != nil {
				t.Fatalf("check: %v", err)
			}
		}
	}
	if p, err := g.Check(ctx, tokA); err != nil || p.UserID != "ua" || p.SessionID != "sa" {
		t.Fatalf("principal: %+v %v", p, err)
	}

	g.RevokeSession("sa", time.Now())
	if _, err := g.Check(ctx, tokA); !errors.Is(err, ErrInvalid) {
		t.Errorf("token of a revoked session: %v", err)
	}
	g.RevokeUser("ub", now)
	if _, err := g.Check(ctx, tokB); !errors.Is(err, ErrInvalid) {
		t.Errorf("token of a user logged out everywhere: %v", err)
	}
	if _, err := g.Check(ctx, tokC); err != nil {
		t.Errorf("token of another session: %v", err)
	}

	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claimsFor("ud", "sd", now))
	tok.Header["kid"] = "k1"
	tok.Header["typ"] = events.TokenType
	forged, err := tok.SignedString(foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Check(ctx, forged); !errors.Is(err, ErrInvalid) {
		t.Errorf("token of a foreign key: %v", err)
	}
}
