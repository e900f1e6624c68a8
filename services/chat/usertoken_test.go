package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken/authtokentest"
	"github.com/parley-chat/parley/services/chat"
)

// rawRequest sends req with exactly the token given ("" for none).
func rawRequest[Req, Rep any](e *env, subject, token string, req Req) (Rep, error) {
	ctx, cancel := context.WithTimeout(events.WithUserToken(context.Background(), token), 10*time.Second)
	defer cancel()
	return events.Request[Req, Rep](ctx, e.nc, subject, req)
}

// TestUserToken: the user-facing RPCs act only as the user of the forwarded token; no
// token, a bad one, or a payload naming another user is unauthenticated and changes
// nothing; the worker-side RPCs need no token.
func TestUserToken(t *testing.T) {
	e := newEnv(t)
	alice, bob := newUser(), newUser()
	bobChat := mustCreate(t, e, bob)
	bobMsg := must(send(e, bob, bobChat.ID, "bob's secret", ""))(t)
	aliceTok, bobTok := e.tokens.Token(alice), e.tokens.Token(bob)
	now := time.Now()
	expired := e.tokens.Sign(map[string]any{"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": bob, "sid": "s",
		"jti": "j", "iat": now.Add(-20 * time.Minute).Unix(), "exp": now.Add(-5 * time.Minute).Unix()})
	wrongAud := e.tokens.Sign(map[string]any{"iss": events.TokenIssuer, "aud": "someone-else", "sub": bob, "sid": "s",
		"jti": "j", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	foreign := authtokentest.New(t).Token(bob) // a key auth never published
	ap, bp := strings.Split(aliceTok, "."), strings.Split(bobTok, ".")
	spliced := ap[0] + "." + bp[1] + "." + ap[2] // bob's claims under alice's signature
	// bob logged out of one session: auth wrote it to the revoked-sessions bucket.
	loggedOut := e.tokens.Sign(map[string]any{"iss": events.TokenIssuer, "aud": events.TokenAudience, "sub": bob, "sid": "s-logged-out",
		"jti": "j2", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	kv, err := e.js.KeyValue(context.Background(), events.BucketRevokedSessions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "s-logged-out", []byte(now.Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "chat to refuse the logged-out session", func() bool {
		_, err := rawRequest[events.ListChatsRequest, events.ListChatsReply](e, events.SubjectChatList, loggedOut, events.ListChatsRequest{UserID: bob})
		var ee *events.Error
		return errors.As(err, &ee) && ee.Code == events.CodeUnauthenticated
	})

	for name, tok := range map[string]string{
		"no token":                        "",
		"alice's token, bob's user id":    aliceTok,
		"expired token of bob":            expired,
		"bob's token for another aud":     wrongAud,
		"bob's token by an unknown key":   foreign,
		"bob's claims, alice's signature": spliced,
		"garbage":                         "not.a.token",
		"bob's token, session logged out": loggedOut,
	} {
		t.Run(name, func(t *testing.T) {
			calls := map[string]func() error{
				"list": func() error {
					_, err := rawRequest[events.ListChatsRequest, events.ListChatsReply](e, events.SubjectChatList, tok, events.ListChatsRequest{UserID: bob})
					return err
				},
				"get": func() error {
					_, err := rawRequest[events.ChatRef, events.ChatReply](e, events.SubjectChatGet, tok, events.ChatRef{UserID: bob, ChatID: bobChat.ID})
					return err
				},
				"messages": func() error {
					_, err := rawRequest[events.ListMessagesRequest, events.ListMessagesReply](e, events.SubjectMessageList, tok,
						events.ListMessagesRequest{UserID: bob, ChatID: bobChat.ID})
					return err
				},
				"message": func() error {
					_, err := rawRequest[events.MessageRef, events.MessageReply](e, events.SubjectMessageGet, tok,
						events.MessageRef{UserID: bob, MessageID: bobMsg.UserMessage.ID})
					return err
				},
				"rename": func() error {
					title := "pwned"
					_, err := rawRequest[events.UpdateChatRequest, events.ChatReply](e, events.SubjectChatUpdate, tok,
						events.UpdateChatRequest{UserID: bob, ChatID: bobChat.ID, Title: &title})
					return err
				},
				"send": func() error {
					_, err := rawRequest[events.SendMessageRequest, events.SendMessageReply](e, events.SubjectMessageSend, tok,
						events.SendMessageRequest{UserID: bob, ChatID: bobChat.ID, Content: "injected"})
					return err
				},
				"cancel": func() error {
					_, err := rawRequest[events.MessageRef, events.MessageReply](e, events.SubjectMessageCancel, tok,
						events.MessageRef{UserID: bob, MessageID: bobMsg.AssistantMessage.ID})
					return err
				},
				"delete": func() error {
					_, err := rawRequest[events.ChatRef, json.RawMessage](e, events.SubjectChatDelete, tok, events.ChatRef{UserID: bob, ChatID: bobChat.ID})
					return err
				},
			}
			for call, do := range calls {
				err := do()
				var ee *events.Error
				if !errors.As(err, &ee) || ee.Code != events.CodeUnauthenticated {
					t.Errorf("%s: %v, want unauthenticated", call, err)
				}
			}
		})
	}
	// Nothing of bob's changed.
	if c := must(getChat(e, bob, bobChat.ID))(t); c.Title == "pwned" {
		t.Errorf("bob's chat renamed to %q", c.Title)
	}
	if ms := must(listMessages(e, bob, bobChat.ID, 50, ""))(t).Messages; len(ms) != 2 {
		t.Errorf("bob's chat has %d messages, want 2", len(ms))
	}
	if m := must(getMessage(e, bob, bobMsg.AssistantMessage.ID))(t); m.Status != events.StatusPending {
		t.Errorf("bob's answer is %s, want pending", m.Status)
	}

	// The token's user is the user: an empty payload user id is filled in from it,
	// and alice with her own token sees her own (no) chats, not bob's.
	rep, err := rawRequest[events.ListChatsRequest, events.ListChatsReply](e, events.SubjectChatList, bobTok, events.ListChatsRequest{})
	if err != nil || len(rep.Chats) != 1 || rep.Chats[0].ID != bobChat.ID {
		t.Errorf("bob, no payload user: %+v %v", rep, err)
	}
	rep, err = rawRequest[events.ListChatsRequest, events.ListChatsReply](e, events.SubjectChatList, aliceTok, events.ListChatsRequest{UserID: alice})
	if err != nil || len(rep.Chats) != 0 {
		t.Errorf("alice: %+v %v", rep, err)
	}
	// Worker-side RPCs carry no user and need no token.
	if _, err := rawRequest[events.ConversationRequest, events.ConversationReply](e, events.SubjectConversationGet, "",
		events.ConversationRequest{MessageID: bobMsg.AssistantMessage.ID}); err != nil {
		t.Errorf("conversation without a token: %v", err)
	}
}

// TestUserTokenBeforeAuth: chat started before auth waits for auth's token keys
// before it announces itself (it does not answer $SRV.PING, which readiness checks
// count); past CHAT_KEYS_WAIT it serves anyway, answering the user-facing RPCs with
// unavailable (not unauthenticated), and fetches the keys by itself once auth is there.
func TestUserTokenBeforeAuth(t *testing.T) {
	ping := func(nc *nats.Conn) bool {
		_, err := nc.Request("$SRV.PING."+events.ChatService, nil, 200*time.Millisecond)
		return err == nil
	}
	start := func(t *testing.T, keysWait time.Duration) *env {
		d := testdb.New(t)
		ns := testnats.New(t)
		nc := testnats.Connect(t, ns.ClientURL())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- chat.Run(ctx, chat.Config{NATSURL: ns.ClientURL(), KeysWait: keysWait,
				DB: db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name}}, chat.Deps{})
		}()
		t.Cleanup(func() { cancel(); <-done })
		return &env{t: t, nc: nc}
	}
	latestCode := func(e *env, tok string) string {
		_, err := rawRequest[events.ChatRef, events.ChatReply](e, events.SubjectChatLatest, tok, events.ChatRef{})
		var ee *events.Error
		if errors.As(err, &ee) {
			return ee.Code
		}
		return fmt.Sprint(err)
	}

	t.Run("announced once the keys are there", func(t *testing.T) {
		e := start(t, time.Hour)
		auth := authtokentest.New(t)
		tok := auth.Token(newUser())
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			if ping(e.nc) {
				t.Fatal("chat answers $SRV.PING before it can verify tokens")
			}
		}
		auth.ServeOn(t, e.nc)
		waitFor(t, "chat to answer $SRV.PING", func() bool { return ping(e.nc) })
		if code := latestCode(e, tok); code != events.CodeNoChats {
			t.Fatalf("first call once announced: %s, want %s", code, events.CodeNoChats)
		}
	})
	t.Run("serves anyway past the wait", func(t *testing.T) {
		e := start(t, 200*time.Millisecond)
		// The token is signed with a key nobody serves yet.
		auth := authtokentest.New(t)
		tok := auth.Token(newUser())
		waitFor(t, "chat to answer unavailable", func() bool { return latestCode(e, tok) == events.CodeUnavailable })
		auth.ServeOn(t, e.nc)
		waitFor(t, "chat to verify the token", func() bool { return latestCode(e, tok) == events.CodeNoChats })
	})
}
