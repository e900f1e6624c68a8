package security_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/events"
)

// testForwardedToken: bar §3 point (3), "contain a compromised gateway". Straight over
// NATS with the gateway's own NATS user (so with every right to call chat.rpc), chat
// acts only as the user whose live access token comes in the Parley-User-Token header:
// (a) no token, (b) alice's valid token with bob's user id, (c) tampered or expired
// tokens are all refused with unauthenticated, nothing of bob's changes and none of his
// data comes back; (d) bob's own valid token works.
func testForwardedToken(t *testing.T, s *stack) {
	s.use(t)
	alice := s.user("fwd_alice", false)
	bob := s.user("fwd_bob", false)
	canary := "canary-" + randomHex(6)
	bobChat := bob.CreateChat("bob " + canary)
	sent := bob.Send(bobChat.ID, "bob's secret "+canary)
	bob.ReadAnswer(sent.AssistantMessage.ID, nil)

	snapshot := func() string { return s.userRows(t, bob.User.ID) }
	before := snapshot()
	counts := rowCounts(t, s)

	gw := connectAs(t, s, "gateway")
	// call sends one chat RPC as the gateway would, with exactly this token ("": none).
	call := func(subject, token string, req any) (json.RawMessage, error) {
		ctx, cancel := context.WithTimeout(events.WithUserToken(context.Background(), token), 10*time.Second)
		defer cancel()
		return events.Request[any, json.RawMessage](ctx, gw.nc, subject, req)
	}
	title := "hijacked " + canary
	calls := []struct {
		subject string
		req     any
	}{
		{events.SubjectChatList, events.ListChatsRequest{UserID: bob.User.ID}},
		{events.SubjectChatList, events.ListChatsRequest{UserID: bob.User.ID, Query: canary}},
		{events.SubjectChatLatest, events.ChatRef{UserID: bob.User.ID}},
		{events.SubjectChatGet, events.ChatRef{UserID: bob.User.ID, ChatID: bobChat.ID}},
		{events.SubjectMessageList, events.ListMessagesRequest{UserID: bob.User.ID, ChatID: bobChat.ID}},
		{events.SubjectMessageGet, events.MessageRef{UserID: bob.User.ID, MessageID: sent.UserMessage.ID}},
		{events.SubjectChatUpdate, events.UpdateChatRequest{UserID: bob.User.ID, ChatID: bobChat.ID, Title: &title}},
		{events.SubjectMessageSend, events.SendMessageRequest{UserID: bob.User.ID, ChatID: bobChat.ID, Content: "injected"}},
		{events.SubjectChatRegenerate, events.ChatRef{UserID: bob.User.ID, ChatID: bobChat.ID}},
		{events.SubjectMessageCancel, events.MessageRef{UserID: bob.User.ID, MessageID: sent.AssistantMessage.ID}},
		{events.SubjectChatCreate, events.CreateChatRequest{UserID: bob.User.ID, Title: "planted"}},
		{events.SubjectChatDelete, events.ChatRef{UserID: bob.User.ID, ChatID: bobChat.ID}},
	}

	// Tampered tokens: bob's claims under the live key's header but a foreign
	// signature, bob's claims spliced onto alice's signature, an expired token and one
	// for another audience validly signed with the live key (read from the database).
	kid, key := liveKey(t, s)
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": bob.User.ID, "sid": userSession(t, bob.Session),
			"jti": randomHex(16), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	header := map[string]any{"alg": "EdDSA", "typ": events.TokenType, "kid": kid}
	signWith := func(k ed25519.PrivateKey) func([]byte) []byte {
		return func(in []byte) []byte { return ed25519.Sign(k, in) }
	}
	ap, bp := strings.Split(alice.Token, "."), strings.Split(bob.Token, ".")
	refused := map[string]string{
		"(a) no token":                        "",
		"(b) alice's token, bob's user id":    alice.Token,
		"(c) foreign key, live kid":           forge(header, claims(nil), signWith(foreign)),
		"(c) bob's claims, alice's signature": ap[0] + "." + bp[1] + "." + ap[2],
		"(c) expired": forge(header, claims(func(m map[string]any) {
			m["iat"], m["exp"] = now.Add(-20*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		}), signWith(key)),
		"(c) wrong aud": forge(header, claims(func(m map[string]any) { m["aud"] = "someone-else" }), signWith(key)),
		"(c) alg none":  forge(map[string]any{"alg": "none", "typ": events.TokenType, "kid": kid}, claims(nil), func([]byte) []byte { return nil }),
		"(c) garbage":   "garbage",
	}
	for name, tok := range refused {
		for _, c := range calls {
			rep, err := call(c.subject, tok, c.req)
			var e *events.Error
			if !errors.As(err, &e) || e.Code != events.CodeUnauthenticated {
				t.Errorf("%s, %s: %v %s, want unauthenticated", name, c.subject, err, rep)
			}
			if strings.Contains(string(rep), canary) {
				t.Errorf("%s, %s: bob's data came back", name, c.subject)
			}
		}
	}
	if diff := cmp.Diff(before, snapshot()); diff != "" {
		t.Errorf("bob's data changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(counts, rowCounts(t, s)); diff != "" {
		t.Errorf("rows were added or removed (-before +after):\n%s", diff)
	}

	// (d) bob's own live token works, straight over NATS too, and speaks for bob
	// whatever user id the payload leaves out.
	for _, req := range []events.ListChatsRequest{{UserID: bob.User.ID, Query: canary}, {Query: canary}} {
		raw, err := call(events.SubjectChatList, bob.Token, req)
		var rep events.ListChatsReply
		if err != nil || json.Unmarshal(raw, &rep) != nil || len(rep.Chats) != 1 || rep.Chats[0].ID != bobChat.ID {
			t.Errorf("bob's token, %+v: %v %s", req, err, raw)
		}
	}
	raw, err := call(events.SubjectMessageGet, bob.Token, events.MessageRef{UserID: bob.User.ID, MessageID: sent.UserMessage.ID})
	if err != nil || !strings.Contains(string(raw), canary) {
		t.Errorf("bob's token, message get: %v %s", err, raw)
	}
	// ...and alice's token with her own id sees none of bob's chats.
	raw, err = call(events.SubjectChatList, alice.Token, events.ListChatsRequest{UserID: alice.User.ID, Query: canary})
	if err != nil || strings.Contains(string(raw), canary) {
		t.Errorf("alice's own list: %v %s", err, raw)
	}
}
