package security_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// testProductUnderPermissions: the whole product works when every service connects as
// its own NATS user with the permissions of deploy/nats/nats.conf, and no service hit
// a permission error on the way.
func testProductUnderPermissions(t *testing.T, s *stack) {
	s.use(t)
	browser := s.user("perm_ann", true)
	api := s.LogIn(browser.User.Username, false)

	var me events.UserReply
	browser.Call("GET", "/api/auth/me", nil, http.StatusOK, &me)
	var models events.ModelsReply
	api.Call("GET", "/api/models", nil, http.StatusOK, &models)
	if len(models.Models) == 0 {
		t.Fatal("no models")
	}
	c := browser.CreateChat("permissions")
	browser.Call("PATCH", "/api/chats/"+c.ID, map[string]string{"title": "renamed"}, http.StatusOK, nil)
	browser.Call("GET", "/api/chats", nil, http.StatusOK, nil)
	browser.Call("GET", "/api/chats/latest", nil, http.StatusOK, nil)

	// Live chat events in a second "tab" while the first one sends.
	live := make(chan []sseEvent, 1)
	opened := make(chan struct{})
	go func() {
		_, evs := api.ReadStream("/api/chats/"+c.ID+"/events", nil, func(e sseEvent) bool { return e.Event == "message.completed" },
			20*time.Second, func() { close(opened) })
		live <- evs
	}()
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("chat event stream did not open")
	}
	sent := browser.Send(c.ID, "Hello under least privilege")
	_, evs := browser.ReadAnswer(sent.AssistantMessage.ID, nil)
	if m := final(t, evs); m.Status != events.StatusComplete || !strings.Contains(m.Content, "Hello under least privilege") {
		t.Fatalf("answer: %+v", m)
	}
	got := <-live
	if len(got) == 0 || got[len(got)-1].Event != "message.completed" {
		t.Errorf("live chat events: %+v", got)
	}

	// Regenerate, then cancel a slow answer.
	var regen events.SendMessageReply
	browser.Call("POST", "/api/chats/"+c.ID+"/regenerate", map[string]string{}, http.StatusAccepted, &regen)
	if _, evs := browser.ReadAnswer(regen.AssistantMessage.ID, nil); final(t, evs).Status != events.StatusComplete {
		t.Errorf("regenerated answer: %+v", final(t, evs))
	}
	s.hf.Enqueue("", fakehf.Step{Delay: 20 * time.Second})
	slow := api.Send(c.ID, "take your time")
	api.Call("POST", "/api/messages/"+slow.AssistantMessage.ID+"/cancel", nil, http.StatusAccepted, nil)
	if _, evs := api.ReadAnswer(slow.AssistantMessage.ID, nil); final(t, evs).Status != events.StatusCancelled {
		t.Errorf("cancelled answer: %+v", final(t, evs))
	}
	if msgs := api.Messages(c.ID); len(msgs) < 4 {
		t.Errorf("messages: %d", len(msgs))
	}
	browser.Call("GET", "/api/chats/"+c.ID+"/export?format=json", nil, http.StatusOK, nil)
	other := api.CreateChat("to delete")
	api.Call("DELETE", "/api/chats/"+other.ID, nil, http.StatusNoContent, nil)

	// Refresh and logout (the revocation bucket write and watch).
	refresher := s.NewBrowser()
	var rotated loginReply
	refresher.Call("POST", "/api/auth/refresh", map[string]string{"refresh_token": api.Session.RefreshToken}, http.StatusOK, &rotated)
	api.Token = rotated.AccessToken
	api.Call("POST", "/api/auth/logout", nil, http.StatusNoContent, nil)
	e2e.Eventually(t, 2*time.Second, "logged-out token refused", func() error {
		if res := api.Raw("GET", "/api/auth/me", nil, nil); res.Status != http.StatusUnauthorized {
			return fmt.Errorf("status %d", res.Status)
		}
		return nil
	})

	if v := s.permissionViolations(); len(v) > 0 {
		t.Errorf("services hit NATS permission errors:\n%s", strings.Join(v, "\n"))
	}
}

// natsClient is a raw NATS connection as one service's user, recording the permission
// errors the server sends it.
type natsClient struct {
	nc   *nats.Conn
	errs chan error
}

func connectAs(t *testing.T, s *stack, user string) *natsClient {
	t.Helper()
	c := &natsClient{errs: make(chan error, 64)}
	nc, err := nats.Connect(userURL(s.nats, user, s.nu[user]),
		nats.CustomInboxPrefix("_INBOX_"+user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

// denied runs action and expects the server to refuse it with a permissions violation
// naming subject.
func (c *natsClient) denied(t *testing.T, what, subject string, action func() error) {
	t.Helper()
	err := action()
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		return
	}
	// Flush makes the server answer the PUB/SUB before the PONG, so an -ERR arrives
	// before Flush returns.
	_ = c.nc.FlushTimeout(2 * time.Second)
	deadline := time.After(2 * time.Second)
	for {
		select {
		case err := <-c.errs:
			msg := strings.ToLower(err.Error())
			if strings.Contains(msg, "permissions violation") && strings.Contains(msg, strings.ToLower(subject)) {
				return
			}
		case <-deadline:
			t.Errorf("%s (%s): no permissions violation", what, subject)
			return
		}
	}
}

// allowed runs action and expects no permission error.
func (c *natsClient) allowed(t *testing.T, what string, action func() error) {
	t.Helper()
	if err := action(); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	_ = c.nc.FlushTimeout(2 * time.Second)
	select {
	case err := <-c.errs:
		t.Errorf("%s: %v", what, err)
	case <-time.After(200 * time.Millisecond):
	}
}

func pub(c *natsClient, subject string) func() error {
	return func() error { return c.nc.Publish(subject, []byte(`{}`)) }
}

func sub(c *natsClient, subject string) func() error {
	return func() error {
		_, err := c.nc.SubscribeSync(subject)
		return err
	}
}

// testNATSPermissions: what each service's user must not do, straight over NATS.
func testNATSPermissions(t *testing.T, s *stack) {
	s.use(t)
	victim := s.user("perm_victim", false)
	gw := connectAs(t, s, "gateway")
	inf := connectAs(t, s, "inference")
	ch := connectAs(t, s, "chat")
	au := connectAs(t, s, "auth")

	// Controls: each user may do its own job.
	gw.allowed(t, "gateway asks for the token keys", func() error {
		_, err := gw.nc.Request(events.SubjectAuthKeys, []byte(`{}`), 3*time.Second)
		return err
	})
	ch.allowed(t, "chat asks for the token keys", func() error {
		_, err := ch.nc.Request(events.SubjectAuthKeys, []byte(`{}`), 3*time.Second)
		return err
	})
	for _, c := range []struct {
		name string
		c    *natsClient
	}{{"gateway", gw}, {"inference", inf}, {"chat", ch}, {"auth", au}} {
		c.c.allowed(t, c.name+" subscribes to its own inbox", sub(c.c, "_INBOX_"+c.name+".>"))
	}

	// A compromised gateway cannot fake the pipeline or reshape JetStream.
	for _, subject := range []string{
		events.SubjectMessageCreated,
		events.SubjectMessageCompleted,
		events.SubjectMessageComplete,
		events.SubjectMessageStart,
		events.SubjectConversationGet,
		events.SubjectGeneration("0190aaaa-0000-7000-8000-000000000000"),
		events.SubjectCancel("0190aaaa-0000-7000-8000-000000000000"),
		"$JS.API.STREAM.CREATE.EVIL",
		"$JS.API.STREAM.DELETE." + events.StreamChatEvents,
		"$JS.API.STREAM.PURGE." + events.StreamGenerations,
		"$JS.API.STREAM.UPDATE." + events.StreamGenerations,
		"$JS.API.CONSUMER.DELETE." + events.StreamChatEvents + "." + events.ConsumerInference,
		"$JS.API.CONSUMER.CREATE." + events.StreamChatEvents + "." + events.ConsumerInference + "." + events.SubjectMessageCreated,
		"$JS.API.CONSUMER.MSG.NEXT." + events.StreamChatEvents + "." + events.ConsumerInference,
		"$JS.ACK." + events.StreamChatEvents + ".inference.1.1.1.1.1",
		"$KV." + events.BucketRevokedSessions + ".some-session",
		"$JS.API.STREAM.DELETE.KV_" + events.BucketRevokedSessions,
	} {
		gw.denied(t, "gateway publishes", subject, pub(gw, subject))
	}
	// ...nor stand in for a service or read anything but its own replies and the
	// generation events (gen.>: one subscription per replica relays them to the open
	// answer streams; it could read them from the GENERATIONS stream anyway).
	for _, subject := range []string{"chat.v1.>", "auth.v1.>", "chat.events.>", ">"} {
		gw.denied(t, "gateway subscribes", subject, sub(gw, subject))
	}

	// A worker cannot read users or sessions, nor call user-facing chat RPCs.
	for _, subject := range []string{events.SubjectAuthMe, events.SubjectAuthLogin, events.SubjectAuthSignup,
		events.SubjectAuthRefresh, events.SubjectAuthLogout, events.SubjectAuthKeys,
		events.SubjectChatList, events.SubjectMessageList, events.SubjectMessageSend, events.SubjectMessageCreated,
		"$JS.API.STREAM.DELETE." + events.StreamChatEvents, "$KV." + events.BucketRevokedSessions + ".x"} {
		inf.denied(t, "inference publishes", subject, pub(inf, subject))
	}
	// Asked for a real user, the worker gets nothing back.
	_, err := inf.nc.Request(events.SubjectAuthMe, []byte(`{"user_id":"`+victim.User.ID+`"}`), time.Second)
	if err == nil {
		t.Errorf("inference read a user")
	}
	for _, subject := range []string{"auth.v1.>", "chat.v1.>"} {
		inf.denied(t, "inference subscribes", subject, sub(inf, subject))
	}

	// chat and auth stay in their lanes too.
	for _, subject := range []string{events.SubjectAuthMe, events.SubjectAuthLogin, "$JS.API.STREAM.DELETE.KV_" + events.BucketRevokedSessions,
		"$KV." + events.BucketRevokedSessions + ".x"} {
		ch.denied(t, "chat publishes", subject, pub(ch, subject))
	}
	for _, subject := range []string{events.SubjectChatList, events.SubjectMessageCreated, events.SubjectGeneration("x"),
		"$JS.API.STREAM.DELETE." + events.StreamChatEvents, "$JS.API.STREAM.DELETE." + events.StreamGenerations} {
		au.denied(t, "auth publishes", subject, pub(au, subject))
	}
	ch.denied(t, "chat subscribes", "auth.v1.>", sub(ch, "auth.v1.>"))
	au.denied(t, "auth subscribes", "chat.v1.>", sub(au, "chat.v1.>"))

	// Nobody but its owner reads a service's inbox.
	all := map[string]*natsClient{"gateway": gw, "inference": inf, "chat": ch, "auth": au}
	for user, c := range all {
		for owner := range all {
			if owner == user {
				continue
			}
			subject := "_INBOX_" + owner + ".>"
			c.denied(t, user+" subscribes to "+owner+"'s inbox", subject, sub(c, subject))
		}
		c.denied(t, user+" subscribes to the default inbox", "_INBOX.>", sub(c, "_INBOX.>"))
	}

	// Wrong or missing credentials do not get in at all.
	for name, u := range map[string]string{
		"wrong password": userURL(s.nats, "gateway", "not-the-password"),
		"no credentials": s.nats.ClientURL(),
		"unknown user":   userURL(s.nats, "admin", "admin"),
	} {
		nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v (want an authorization error)", name, err)
		}
	}
}
