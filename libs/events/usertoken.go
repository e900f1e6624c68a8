package events

import "context"

// HeaderUserToken carries the user's access token (a JWT) from the gateway to the
// services it calls on the user's behalf, so that they verify who the user is
// themselves rather than trust the user id in the payload (a compromised gateway can
// then act only as users whose live tokens it sees).
const HeaderUserToken = "Parley-User-Token"

type userTokenKey struct{}

// WithUserToken returns a context whose requests (Request) carry the user's access token.
func WithUserToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, userTokenKey{}, token)
}

// UserToken returns the access token carried by ctx (set by the gateway, or by Handle
// from a request's header), or "".
func UserToken(ctx context.Context) string {
	t, _ := ctx.Value(userTokenKey{}).(string)
	return t
}
