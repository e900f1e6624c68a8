package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/services/auth/internal/password"
)

// timePrecision is what DATETIME(6) keeps.
const timePrecision = time.Microsecond

// LoginInput is a login attempt; Login is a username or an email.
type LoginInput struct {
	Login    string
	Password string
	ClientIP string
}

// Login checks the credentials and starts a session. An unknown login and a wrong
// password give the same ErrInvalidCredentials after the same work (a hash is checked
// against a dummy hash for an unknown login). Throttled attempts give *ThrottledError
// without any hash.
func (s *Service) Login(ctx context.Context, in LoginInput) (Issued, error) {
	now := s.now()
	if ok, wait := s.ip.allow(in.ClientIP, now); !ok {
		s.log.WarnContext(ctx, "login throttled by client ip", "client_ip", in.ClientIP)
		return Issued{}, &ThrottledError{RetryAfter: retrySeconds(wait)}
	}
	if in.Login == "" || in.Password == "" || len(in.Login) > MaxEmail || len(in.Password) > 4*MaxPassword {
		return Issued{}, ErrInvalidCredentials
	}
	user, hash, err := s.store.UserByLogin(ctx, in.Login)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Issued{}, fmt.Errorf("find user: %w", err)
	}
	account := accountKey(user.ID, in.Login)
	key := clientKey(account, in.ClientIP)
	accountState, err := s.store.LoginThrottle(ctx, account)
	if err != nil {
		return Issued{}, fmt.Errorf("read login throttle: %w", err)
	}
	state, err := s.store.LoginThrottle(ctx, key)
	if err != nil {
		return Issued{}, fmt.Errorf("read login throttle: %w", err)
	}
	if wait := max(state.blockedFor(now), accountState.blockedFor(now)); wait > 0 {
		return Issued{}, &ThrottledError{RetryAfter: retrySeconds(wait)}
	}
	if !found {
		hash = s.dummyHash
	}
	ok, rehash, err := s.hasher.Verify(ctx, in.Password, hash)
	if err != nil {
		return Issued{}, hashErr("verify password", err)
	}
	if !ok || !found {
		st, err := s.store.UpdateLoginThrottle(ctx, key, func(t ThrottleState) ThrottleState {
			return t.withFailure(s.now())
		})
		if err != nil {
			return Issued{}, fmt.Errorf("record login failure: %w", err)
		}
		acc, err := s.store.UpdateLoginThrottle(ctx, account, func(t ThrottleState) ThrottleState {
			return t.withAccountFailure(s.now())
		})
		if err != nil {
			return Issued{}, fmt.Errorf("record login failure: %w", err)
		}
		if acc.WindowFailures == hourlyCap {
			s.log.WarnContext(ctx, "login blocked: hourly failure cap of the account reached",
				"user_id", user.ID, "blocked_until", acc.BlockedUntil, "client_ip", in.ClientIP)
		}
		if st.Failures >= freeFailures {
			s.log.WarnContext(ctx, "login delayed after repeated failures",
				"user_id", user.ID, "failures", st.Failures, "blocked_until", st.BlockedUntil, "client_ip", in.ClientIP)
		}
		return Issued{}, ErrInvalidCredentials
	}
	if state.Failures > 0 || !state.UpdatedAt.IsZero() {
		if err := s.store.ClearLoginThrottle(ctx, key); err != nil {
			return Issued{}, fmt.Errorf("clear login throttle: %w", err)
		}
	}
	if rehash {
		if err := s.rehash(ctx, user.ID, in.Password); err != nil {
			// The login itself is fine; the next one will try again.
			s.log.WarnContext(ctx, "password rehash failed", "user_id", user.ID, "err", err)
		}
	}
	iss, err := s.startSession(ctx, user, in.ClientIP)
	if err != nil {
		return Issued{}, err
	}
	s.log.InfoContext(ctx, "user logged in", "user_id", user.ID, "session_id", iss.SessionID)
	return iss, nil
}

func (s *Service) rehash(ctx context.Context, userID, pw string) error {
	h, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if err := s.store.UpdatePasswordHash(ctx, userID, h); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// hashErr turns a full hashing queue into a throttling answer.
func hashErr(doing string, err error) error {
	if errors.Is(err, password.ErrBusy) {
		return &ThrottledError{RetryAfter: time.Second}
	}
	return fmt.Errorf("%s: %w", doing, err)
}
