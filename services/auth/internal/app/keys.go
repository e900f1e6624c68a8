package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// keyReloadEvery is how often Maintain reloads the current key, so a rotation made by
// another replica is picked up; verifiers keep retired keys listed for the token TTL
// plus this (and some margin), so a token signed just before a reload still verifies.
const keyReloadEvery = time.Minute

// ensureKey makes sure the newest non-retired signing key exists and is young enough
// (starting a new one, and retiring the others, when rotate is set, there is none, or
// it is older than KeyMaxAge), then loads it as the current key. Replicas serialise on
// a database lock, so replicas starting together converge on one key.
func (s *Service) ensureKey(ctx context.Context, rotate bool) error {
	err := s.store.WithKeyLock(ctx, func(ctx context.Context) error {
		now := s.now().Truncate(timePrecision)
		cur, err := s.store.CurrentKey(ctx)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return fmt.Errorf("read current signing key: %w", err)
		case rotate:
		case s.cfg.KeyMaxAge > 0 && now.Sub(cur.CreatedAt) > s.cfg.KeyMaxAge:
		default:
			return nil
		}
		k, err := newSigningKey(now)
		if err != nil {
			return err
		}
		if err := s.store.AddKey(ctx, k); err != nil {
			return fmt.Errorf("store signing key: %w", err)
		}
		s.log.InfoContext(ctx, "new signing key", "kid", k.KID, "previous_kid", cur.KID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure signing key: %w", err)
	}
	return s.loadKey(ctx)
}

func (s *Service) loadKey(ctx context.Context) error {
	k, err := s.store.CurrentKey(ctx)
	if err != nil {
		return fmt.Errorf("load signing key: %w", err)
	}
	if old := s.key.Load(); old == nil || old.KID != k.KID {
		s.log.InfoContext(ctx, "signing with key", "kid", k.KID)
	}
	s.key.Store(&k)
	return nil
}

func newSigningKey(now time.Time) (SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	return SigningKey{KID: kidOf(pub), Private: priv, CreatedAt: now}, nil
}

// kidOf names a key by its public half: base64url of the first 12 bytes of its SHA-256.
func kidOf(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// PublicKeys lists the keys that verify tokens that may still be valid: every key not
// retired, and retired ones younger than the token lifetime (plus reload margin).
func (s *Service) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	since := s.now().Add(-(s.cfg.AccessTTL + 2*keyReloadEvery))
	keys, err := s.store.VerificationKeys(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	out := make([]PublicKey, 0, len(keys))
	for _, k := range keys {
		pub, ok := k.Private.Public().(ed25519.PublicKey)
		if !ok {
			continue
		}
		out = append(out, PublicKey{KID: k.KID, Key: pub})
	}
	return out, nil
}

// Maintain runs until ctx ends: it rotates the signing key when it grows too old,
// reloads the current key (a rotation by another replica), and deletes expired
// sessions, refresh tokens, throttle rows and long-retired keys.
func (s *Service) Maintain(ctx context.Context) {
	tick := time.NewTicker(keyReloadEvery)
	defer tick.Stop()
	var lastCleanup time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.ensureKey(ctx, false); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "signing key maintenance failed", "err", err)
		}
		if now := s.now(); now.Sub(lastCleanup) >= 10*time.Minute {
			lastCleanup = now
			// Sessions and throttle rows a day past their end, keys a day past retirement.
			if err := s.store.DeleteExpired(ctx, now.Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "cleanup failed", "err", err)
			}
		}
	}
}
