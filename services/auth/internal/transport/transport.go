// Package transport serves the auth use cases as a NATS micro service on the subjects
// of libs/events, and publishes revocations to the JetStream KV bucket every gateway
// watches.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/auth/internal/app"
)

// Version is the micro service version.
const Version = "1.0.0"

// Start adds the auth micro service to nc with one endpoint per auth subject, each
// handler bounded by timeout and measured by metrics (which may be nil). The calls made
// for a signed-in user (logout, me) act only for the user and session of the access
// token the gateway forwards, verified with keys (see Keys), not for the ids in the
// payload. Stop the returned service to drain it.
func Start(nc *nats.Conn, svc *app.Service, keys *authtoken.Keyring, log *slog.Logger, timeout time.Duration, metrics *ops.RPCMetrics) (micro.Service, error) {
	ms, err := micro.AddService(nc, micro.Config{
		Name:        events.AuthService,
		Version:     Version,
		Description: "Parley accounts, sessions and token signing keys",
	})
	if err != nil {
		return nil, fmt.Errorf("add auth micro service: %w", err)
	}
	h := handlers{svc: svc, keys: keys}
	endpoints := []struct {
		name    string
		subject string
		handler micro.Handler
	}{
		{"signup", events.SubjectAuthSignup, events.Handle(log, timeout, h.signup)},
		{"login", events.SubjectAuthLogin, events.Handle(log, timeout, h.login)},
		{"refresh", events.SubjectAuthRefresh, events.Handle(log, timeout, h.refresh)},
		{"logout", events.SubjectAuthLogout, events.Handle(log, timeout, h.logout)},
		{"me", events.SubjectAuthMe, events.Handle(log, timeout, h.me)},
		{"keys", events.SubjectAuthKeys, events.Handle(log, timeout, h.publicKeys)},
	}
	for _, e := range endpoints {
		if err := ms.AddEndpoint(e.name, metrics.Wrap(e.name, e.handler), micro.WithEndpointSubject(e.subject)); err != nil {
			_ = ms.Stop()
			return nil, fmt.Errorf("add endpoint %s: %w", e.name, err)
		}
	}
	return ms, nil
}

type handlers struct {
	svc  *app.Service
	keys *authtoken.Keyring
}

// Keys is the source of a keyring over the service's own verification keys.
func Keys(svc *app.Service) func(ctx context.Context) ([]events.PublicKey, error) {
	return func(ctx context.Context) ([]events.PublicKey, error) {
		keys, err := svc.PublicKeys(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]events.PublicKey, 0, len(keys))
		for _, k := range keys {
			out = append(out, events.PublicKey{KID: k.KID, Alg: events.TokenAlg, Key: []byte(k.Key)})
		}
		return out, nil
	}
}

func (h handlers) signup(ctx context.Context, req events.SignupRequest) (events.UserReply, error) {
	u, err := h.svc.Signup(ctx, app.SignupInput{
		Username:  req.Username,
		Email:     req.Email,
		Password:  req.Password,
		Firstname: req.Firstname,
		Lastname:  req.Lastname,
		ClientIP:  req.ClientIP,
	})
	if err != nil {
		return events.UserReply{}, toEventsError(err)
	}
	return events.UserReply{User: toEventsUser(u)}, nil
}

func (h handlers) login(ctx context.Context, req events.LoginRequest) (events.Session, error) {
	iss, err := h.svc.Login(ctx, app.LoginInput{Login: req.Username, Password: req.Password, ClientIP: req.ClientIP})
	if err != nil {
		return events.Session{}, toEventsError(err)
	}
	return toEventsSession(iss), nil
}

func (h handlers) refresh(ctx context.Context, req events.RefreshRequest) (events.Session, error) {
	iss, err := h.svc.Refresh(ctx, req.RefreshToken)
	if err != nil {
		return events.Session{}, toEventsError(err)
	}
	return toEventsSession(iss), nil
}

func (h handlers) logout(ctx context.Context, req events.LogoutRequest) (events.Empty, error) {
	id, err := h.keys.Caller(ctx, &req.UserID)
	if err != nil {
		return events.Empty{}, err
	}
	if req.SessionID != "" && req.SessionID != id.SessionID {
		return events.Empty{}, events.ErrUnauthenticated
	}
	req.SessionID = id.SessionID
	if err := h.svc.Logout(ctx, req.UserID, req.SessionID, req.Everywhere); err != nil {
		return events.Empty{}, toEventsError(err)
	}
	return events.Empty{}, nil
}

func (h handlers) me(ctx context.Context, req events.UserRequest) (events.UserReply, error) {
	id, err := h.keys.Caller(ctx, &req.UserID)
	if err != nil {
		return events.UserReply{}, err
	}
	u, err := h.svc.SessionUser(ctx, req.UserID, id.SessionID)
	if err != nil {
		return events.UserReply{}, toEventsError(err)
	}
	return events.UserReply{User: toEventsUser(u)}, nil
}

func (h handlers) publicKeys(ctx context.Context, _ events.Empty) (events.KeysReply, error) {
	keys, err := Keys(h.svc)(ctx)
	if err != nil {
		return events.KeysReply{}, toEventsError(err)
	}
	return events.KeysReply{Keys: keys}, nil
}

func toEventsUser(u app.User) events.User {
	return events.User{
		ID:        u.ID,
		Username:  u.Username,
		Email:     u.Email,
		Firstname: u.Firstname,
		Lastname:  u.Lastname,
		CreatedAt: u.CreatedAt.UTC(),
	}
}

func toEventsSession(i app.Issued) events.Session {
	return events.Session{
		User:             toEventsUser(i.User),
		SessionID:        i.SessionID,
		AccessToken:      i.AccessToken,
		ExpiresAt:        i.ExpiresAt.UTC(),
		RefreshToken:     i.RefreshToken,
		RefreshExpiresAt: i.RefreshExpiresAt.UTC(),
	}
}

// toEventsError maps app's errors to the contract's; anything else passes through
// (events.Handle logs it and sends a generic internal error).
func toEventsError(err error) error {
	var ve *app.ValidationError
	var te *app.ThrottledError
	switch {
	case errors.As(err, &ve):
		return events.Errorf(events.CodeInvalidInput, "%s", ve.Message)
	case errors.As(err, &te):
		secs := int((te.RetryAfter + time.Second - 1) / time.Second)
		return &events.Error{
			Code:       events.CodeTooManyAttempts,
			Message:    "Too many attempts. Please wait a moment and try again.",
			RetryAfter: max(secs, 1),
		}
	case errors.Is(err, app.ErrUsernameTaken):
		return events.Errorf(events.CodeUsernameTaken, "This username is already taken.")
	case errors.Is(err, app.ErrEmailTaken):
		return events.Errorf(events.CodeEmailTaken, "An account with this email already exists.")
	case errors.Is(err, app.ErrInvalidCredentials):
		return events.Errorf(events.CodeInvalidCredentials, "Wrong username or password.")
	case errors.Is(err, app.ErrUnauthenticated):
		return events.ErrUnauthenticated
	case errors.Is(err, app.ErrNotFound):
		return events.ErrNotFound
	case errors.Is(err, app.ErrUnavailable):
		return events.ErrUnavailable
	}
	return err
}

// KVRevoker writes revocations into the events.BucketRevokedSessions bucket.
type KVRevoker struct {
	KV jetstream.KeyValue
}

// RevokeSession writes key <sessionID> = RFC 3339 time of the revocation.
func (r KVRevoker) RevokeSession(ctx context.Context, sessionID string, at time.Time) error {
	if _, err := r.KV.Put(ctx, sessionID, []byte(at.UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("put revoked session %s: %w", sessionID, err)
	}
	return nil
}

// RevokeUser writes key user_<userID> = RFC 3339 (nano) time: the user's tokens issued
// before it are refused.
func (r KVRevoker) RevokeUser(ctx context.Context, userID string, at time.Time) error {
	if _, err := r.KV.Put(ctx, "user_"+userID, []byte(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("put revoked user %s: %w", userID, err)
	}
	return nil
}
