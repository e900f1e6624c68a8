package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Signup validates in, hashes the password and stores a new user.
func (s *Service) Signup(ctx context.Context, in SignupInput) (User, error) {
	if ok, wait := s.ip.allow(in.ClientIP, s.now()); !ok {
		return User{}, &ThrottledError{RetryAfter: retrySeconds(wait)}
	}
	in, err := s.normalizeSignup(in)
	if err != nil {
		return User{}, err
	}
	// Checked before hashing, so a taken name costs no hash; the unique keys still
	// decide when two signups race.
	userTaken, emailTaken, err := s.store.UsersTaken(ctx, in.Username, in.Email)
	if err != nil {
		return User{}, fmt.Errorf("check username and email: %w", err)
	}
	if userTaken {
		return User{}, ErrUsernameTaken
	}
	if emailTaken {
		return User{}, ErrEmailTaken
	}
	hash, err := s.hasher.Hash(ctx, in.Password)
	if err != nil {
		return User{}, hashErr("hash password", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return User{}, fmt.Errorf("new user id: %w", err)
	}
	u := User{
		ID:        id.String(),
		Username:  in.Username,
		Email:     in.Email,
		Firstname: in.Firstname,
		Lastname:  in.Lastname,
		CreatedAt: s.now().Truncate(timePrecision),
	}
	if err := s.store.CreateUser(ctx, u, hash); err != nil {
		return User{}, fmt.Errorf("store user: %w", err)
	}
	s.log.InfoContext(ctx, "user signed up", "user_id", u.ID)
	return u, nil
}
