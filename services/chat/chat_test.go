package chat_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat"
)

func TestOwnership(t *testing.T) {
	e := newEnv(t)
	alice, bob := newUser(), newUser()
	c := must(createChat(e, events.CreateChatRequest{UserID: alice, Title: "Alice's secret plans"}))(t)
	first := exchange(t, e, alice, c.ID, "my secret question", "the secret answer")
	pending := must(send(e, alice, c.ID, "second question", "cid-1"))(t)
	chatBefore := must(getChat(e, alice, c.ID))(t)
	msgsBefore := must(listMessages(e, alice, c.ID, 0, ""))(t)

	title, model := "hijacked", otherModel
	tests := []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, err := getChat(e, bob, c.ID); return err }},
		{"update", func() error {
			_, err := request[events.UpdateChatRequest, events.ChatReply](e, events.SubjectChatUpdate,
				events.UpdateChatRequest{UserID: bob, ChatID: c.ID, Title: &title, Model: &model})
			return err
		}},
		{"regenerate", func() error { _, err := regenerate(e, bob, c.ID); return err }},
		{"list messages", func() error { _, err := listMessages(e, bob, c.ID, 0, ""); return err }},
		{"send", func() error { _, err := send(e, bob, c.ID, "hello", ""); return err }},
		{"send with alice's client id", func() error { _, err := send(e, bob, c.ID, "hello", "cid-1"); return err }},
		{"get user message", func() error { _, err := getMessage(e, bob, first.UserMessage.ID); return err }},
		{"get answer", func() error { _, err := getMessage(e, bob, first.AssistantMessage.ID); return err }},
		{"cancel", func() error { _, err := cancelMessage(e, bob, pending.AssistantMessage.ID); return err }},
		{"delete", func() error {
			_, err := request[events.ChatRef, events.Empty](e, events.SubjectChatDelete, events.ChatRef{UserID: bob, ChatID: c.ID})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), events.CodeNotFound) })
	}

	// Bob sees nothing of Alice's, not even through search.
	_, err := latest(e, bob)
	wantCode(t, err, events.CodeNoChats)
	for _, q := range []string{"", "secret"} {
		list := must(listChats(e, events.ListChatsRequest{UserID: bob, Query: q}))(t)
		if len(list.Chats) != 0 {
			t.Errorf("bob's list with q=%q: %v", q, list.Chats)
		}
	}

	// Alice's data is unchanged.
	if diff := cmp.Diff(chatBefore, must(getChat(e, alice, c.ID))(t)); diff != "" {
		t.Errorf("alice's chat changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(msgsBefore, must(listMessages(e, alice, c.ID, 0, ""))(t)); diff != "" {
		t.Errorf("alice's messages changed (-before +after):\n%s", diff)
	}
}

func TestSendStoresBothMessagesAndPublishesOneEvent(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	if c.Title != "New chat" || c.Model != defaultModel {
		t.Fatalf("new chat = %+v, want title New chat and the default model", c)
	}
	rep := must(send(e, user, c.ID, "  Tell me about the history of the Roman empire please, in detail  ", ""))(t)

	u, a := rep.UserMessage, rep.AssistantMessage
	if u.Role != events.RoleUser || u.Status != events.StatusComplete || u.Content != "Tell me about the history of the Roman empire please, in detail" {
		t.Errorf("user message = %+v", u)
	}
	if a.Role != events.RoleAssistant || a.Status != events.StatusPending || a.Model != defaultModel || a.ChatID != c.ID {
		t.Errorf("assistant message = %+v", a)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE chat_id = ?", c.ID); n != 2 {
		t.Errorf("messages in chat = %d, want 2", n)
	}
	var replyTo string
	if err := e.db.QueryRow("SELECT reply_to FROM messages WHERE id = ?", a.ID).Scan(&replyTo); err != nil || replyTo != u.ID {
		t.Errorf("answer reply_to = %q (%v), want %s", replyTo, err, u.ID)
	}
	got := must(getChat(e, user, c.ID))(t)
	if got.Title != "Tell me about the history of the Roman" {
		t.Errorf("provisional title = %q", got.Title)
	}
	if !got.UpdatedAt.After(c.UpdatedAt) {
		t.Errorf("updated_at %v not after %v", got.UpdatedAt, c.UpdatedAt)
	}

	rows := outbox(t, e)
	if len(rows) != 1 || rows[0].Subject != events.SubjectMessageCreated {
		t.Fatalf("outbox = %+v, want one message.created row", rows)
	}
	row := rows[0]
	if row.Event.ID != row.ID || row.Event.Source != "chat" || row.Event.Version != events.EventVersion {
		t.Errorf("event envelope = %+v", row.Event)
	}
	want := events.MessageCreated{ChatID: c.ID, UserID: user, UserMessageID: u.ID, AssistantMessageID: a.ID, Model: defaultModel}
	waitFor(t, "the event in CHAT_EVENTS", func() bool { return len(streamEvents(t, e)) == 1 })
	published := streamEvents(t, e)[0]
	if published.MsgID != row.ID || published.Event.ID != row.ID || published.Event.Type != events.SubjectMessageCreated {
		t.Errorf("published %+v, want Nats-Msg-Id and id %s", published, row.ID)
	}
	var data events.MessageCreated
	mustUnmarshal(t, published.Event.Data, &data)
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("message.created data (-want +got):\n%s", diff)
	}
	waitFor(t, "published_at", func() bool { return outbox(t, e)[0].Published })
}

func TestGenerationInProgress(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	must(send(e, user, c.ID, "first", ""))(t)
	_, err := send(e, user, c.ID, "second", "")
	wantCode(t, err, events.CodeGenerationInProgress)

	// Concurrent sends to a fresh chat: exactly one wins.
	c2 := mustCreate(t, e, user)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = send(e, user, c2.ID, fmt.Sprintf("message %d", i), "") })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantCode(t, err, events.CodeGenerationInProgress)
	}
	if ok != 1 {
		t.Errorf("%d concurrent sends succeeded, want 1", ok)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE chat_id = ?", c2.ID); n != 2 {
		t.Errorf("messages = %d, want 2", n)
	}
}

func TestClientMessageIDIdempotency(t *testing.T) {
	e := newEnv(t)
	user := newUser()

	t.Run("sequential", func(t *testing.T) {
		c := mustCreate(t, e, user)
		first := must(send(e, user, c.ID, "hello", "retry-1"))(t)
		second := must(send(e, user, c.ID, "hello", "retry-1"))(t)
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("replayed send differs (-first +second):\n%s", diff)
		}
		// After the answer finished, a replay returns it as it is now.
		done := must(complete(e, events.CompleteMessageRequest{MessageID: first.AssistantMessage.ID, Status: events.StatusComplete, Content: "hi"}))(t)
		third := must(send(e, user, c.ID, "hello", "retry-1"))(t)
		if diff := cmp.Diff(events.SendMessageReply{UserMessage: first.UserMessage, AssistantMessage: done}, third); diff != "" {
			t.Errorf("replay after completion (-want +got):\n%s", diff)
		}
		if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE chat_id = ?", c.ID); n != 2 {
			t.Errorf("messages = %d, want 2", n)
		}
	})

	t.Run("concurrent same chat", func(t *testing.T) {
		c := mustCreate(t, e, user)
		checkConcurrentReplays(t, e, user, []string{c.ID}, "retry-2")
		if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE chat_id = ?", c.ID); n != 2 {
			t.Errorf("messages = %d, want 2", n)
		}
	})

	t.Run("concurrent different chats", func(t *testing.T) {
		var ids []string
		for range 4 {
			ids = append(ids, mustCreate(t, e, user).ID)
		}
		checkConcurrentReplays(t, e, user, ids, "retry-3")
		if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE client_message_id = ?", "retry-3"); n != 1 {
			t.Errorf("user messages with the client id = %d, want 1", n)
		}
	})

	created := 0
	for _, r := range outbox(t, e) {
		if r.Subject == events.SubjectMessageCreated {
			created++
		}
	}
	if created != 3 {
		t.Errorf("message.created events = %d, want 3", created)
	}

	t.Run("same id, other user", func(t *testing.T) {
		other := newUser()
		c := mustCreate(t, e, other)
		r := must(send(e, other, c.ID, "mine", "retry-1"))(t)
		if r.UserMessage.ChatID != c.ID || r.UserMessage.Content != "mine" {
			t.Errorf("another user's send with the same client id = %+v", r.UserMessage)
		}
	})
}

func checkConcurrentReplays(t *testing.T, e *env, user string, chatIDs []string, cid string) {
	t.Helper()
	const n = 8
	reps := make([]events.SendMessageReply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { reps[i], errs[i] = send(e, user, chatIDs[i%len(chatIDs)], "same message", cid) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("send %d: %v", i, errs[i])
		}
		if diff := cmp.Diff(reps[0], reps[i]); diff != "" {
			t.Errorf("send %d differs (-0 +%d):\n%s", i, i, diff)
		}
	}
}

func TestStartAndCompleteIdempotency(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	r := must(send(e, user, c.ID, "question", ""))(t)
	id := r.AssistantMessage.ID

	if m := must(startMessage(e, id))(t); m.Status != events.StatusStreaming {
		t.Errorf("started status = %s", m.Status)
	}
	if m := must(startMessage(e, id))(t); m.Status != events.StatusStreaming {
		t.Errorf("restarted status = %s", m.Status)
	}
	usage := &events.Usage{PromptTokens: 12, CompletionTokens: 3}
	first := must(complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusComplete, Content: "the answer", Model: otherModel, Usage: usage}))(t)
	if first.Status != events.StatusComplete || first.Content != "the answer" || first.FinishedAt == nil ||
		first.Model != otherModel || !cmp.Equal(first.Usage, usage) {
		t.Errorf("completed = %+v", first)
	}
	again := must(complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusFailed, Content: "other",
		Error: &events.Error{Code: events.CodeProviderError, Message: "boom"}}))(t)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("second completion changed the answer (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(first, must(getMessage(e, user, id))(t)); diff != "" {
		t.Errorf("stored answer (-completion +stored):\n%s", diff)
	}
	completed := 0
	for _, row := range outbox(t, e) {
		if row.Subject == events.SubjectMessageCompleted {
			completed++
			var data events.MessageCompleted
			mustUnmarshal(t, row.Event.Data, &data)
			if diff := cmp.Diff(events.MessageCompleted{ChatID: c.ID, UserID: user, Message: first}, data); diff != "" {
				t.Errorf("message.completed (-want +got):\n%s", diff)
			}
		}
	}
	if completed != 1 {
		t.Errorf("message.completed events = %d, want 1", completed)
	}
	_, err := startMessage(e, id)
	wantCode(t, err, events.CodeNotRunning)
	_, err = complete(e, events.CompleteMessageRequest{MessageID: id, Status: events.StatusPending})
	wantCode(t, err, events.CodeInvalidInput)
	_, err = complete(e, events.CompleteMessageRequest{MessageID: newUser(), Status: events.StatusComplete})
	wantCode(t, err, events.CodeNotFound)
	_, err = startMessage(e, newUser())
	wantCode(t, err, events.CodeNotFound)
	_, err = startMessage(e, r.UserMessage.ID)
	wantCode(t, err, events.CodeNotFound)
}

func TestConversationHoldsOnlyThisChat(t *testing.T) {
	e := newEnv(t)
	alice, bob := newUser(), newUser()
	prompt := "Answer like a pirate."
	c1 := must(createChat(e, events.CreateChatRequest{UserID: alice, SystemPrompt: &prompt}))(t)
	c2 := mustCreate(t, e, alice)
	cb := mustCreate(t, e, bob)

	finish := func(c events.Chat, user, content string, status string, reply string) {
		t.Helper()
		r := must(send(e, user, c.ID, content, ""))(t)
		must(complete(e, events.CompleteMessageRequest{MessageID: r.AssistantMessage.ID, Status: status, Content: reply}))(t)
	}
	finish(c1, alice, "a1", events.StatusComplete, "r1")
	finish(c2, alice, "other chat", events.StatusComplete, "other answer")
	finish(c1, alice, "a2", events.StatusCancelled, "partial")
	finish(cb, bob, "bob's words", events.StatusComplete, "bob's answer")
	finish(c1, alice, "a3", events.StatusFailed, "")
	finish(c1, alice, "a4", events.StatusCancelled, "")
	finish(c2, alice, "more other chat", events.StatusComplete, "more")
	pending := must(send(e, alice, c1.ID, "a5", ""))(t)

	got := must(request[events.ConversationRequest, events.ConversationReply](e, events.SubjectConversationGet,
		events.ConversationRequest{MessageID: pending.AssistantMessage.ID}))(t)
	want := events.ConversationReply{
		ChatID: c1.ID, UserID: alice, Model: defaultModel, SystemPrompt: prompt, Status: events.StatusPending,
		Turns: []events.Turn{
			{Role: events.RoleUser, Content: "a1"},
			{Role: events.RoleAssistant, Content: "r1"},
			{Role: events.RoleUser, Content: "a2"},
			{Role: events.RoleAssistant, Content: "partial"},
			{Role: events.RoleUser, Content: "a3"},
			{Role: events.RoleUser, Content: "a4"},
			{Role: events.RoleUser, Content: "a5"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conversation (-want +got):\n%s", diff)
	}
	_, err := request[events.ConversationRequest, events.ConversationReply](e, events.SubjectConversationGet,
		events.ConversationRequest{MessageID: pending.UserMessage.ID})
	wantCode(t, err, events.CodeNotFound)
}

func TestChatPagination(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	var want []string
	for range 7 {
		want = append([]string{mustCreate(t, e, user).ID}, want...)
	}
	// Activity moves a chat to the front.
	exchange(t, e, user, want[4], "bump", "ok")
	want = append([]string{want[4]}, append(want[:4:4], want[5:]...)...)
	mustCreate(t, e, newUser()) // someone else's

	var got []string
	cursor, pages := "", 0
	for {
		page := must(listChats(e, events.ListChatsRequest{UserID: user, Limit: 3, Cursor: cursor}))(t)
		pages++
		for _, c := range page.Chats {
			got = append(got, c.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chats across pages (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
	_, err := listChats(e, events.ListChatsRequest{UserID: user, Cursor: "not-a-cursor"})
	wantCode(t, err, events.CodeInvalidInput)
}

func TestMessagePagination(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	var want []string
	for i := range 5 {
		r := exchange(t, e, user, c.ID, fmt.Sprintf("q%d", i), fmt.Sprintf("a%d", i))
		want = append(want, r.UserMessage.ID, r.AssistantMessage.ID)
	}
	var pagesSeen [][]string
	before := ""
	for {
		page := must(listMessages(e, user, c.ID, 4, before))(t)
		var ids []string
		for _, m := range page.Messages {
			ids = append(ids, m.ID)
		}
		pagesSeen = append(pagesSeen, ids)
		if page.NextCursor == "" {
			break
		}
		before = page.NextCursor
		if len(pagesSeen) > 10 {
			t.Fatal("pagination does not end")
		}
	}
	wantPages := [][]string{want[6:10], want[2:6], want[0:2]}
	if diff := cmp.Diff(wantPages, pagesSeen); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	all := must(listMessages(e, user, c.ID, 200, ""))(t)
	if all.NextCursor != "" || len(all.Messages) != 10 || all.Messages[0].Content != "q0" || all.Messages[9].Content != "a4" {
		t.Errorf("whole chat = %d messages, next %q", len(all.Messages), all.NextCursor)
	}
	_, err := listMessages(e, user, c.ID, 0, "bogus!")
	wantCode(t, err, events.CodeInvalidInput)
}

func TestSearch(t *testing.T) {
	e := newEnv(t)
	alice, bob := newUser(), newUser()
	holiday := must(createChat(e, events.CreateChatRequest{UserID: alice, Title: "Holiday plans"}))(t)
	animals := must(createChat(e, events.CreateChatRequest{UserID: alice, Title: "Animals"}))(t)
	exchange(t, e, alice, animals.ID, "The quick brown fox jumps over the lazy dog", "Indeed it does.")
	exchange(t, e, alice, animals.ID, "What about an ox?", "An ox is big.")
	mustCreate(t, e, alice)
	bobs := must(createChat(e, events.CreateChatRequest{UserID: bob, Title: "Holiday fox"}))(t)
	exchange(t, e, bob, bobs.ID, "quick fox", "yes")

	tests := []struct {
		q    string
		want []string
	}{
		{"holiday", []string{holiday.ID}},
		{"HOLI", []string{holiday.ID}},
		{"quick fox", []string{animals.ID}},
		{"+quick -fox*", []string{animals.ID}},
		{"ox", []string{animals.ID}},
		{"big", []string{animals.ID}},
		{"plans fox", nil},
		{"zebra", nil},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			page := must(listChats(e, events.ListChatsRequest{UserID: alice, Query: tt.q}))(t)
			var got []string
			for _, c := range page.Chats {
				got = append(got, c.ID)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("search %q (-want +got):\n%s", tt.q, diff)
			}
		})
	}
}

func TestLatest(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	_, err := latest(e, user)
	wantCode(t, err, events.CodeNoChats)
	c1 := mustCreate(t, e, user)
	c2 := mustCreate(t, e, user)
	if got := must(latest(e, user))(t); got.ID != c2.ID {
		t.Errorf("latest = %s, want the newest chat %s", got.ID, c2.ID)
	}
	must(send(e, user, c1.ID, "activity", ""))(t)
	if got := must(latest(e, user))(t); got.ID != c1.ID {
		t.Errorf("latest = %s, want the chat with the newest activity %s", got.ID, c1.ID)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	title, model, prompt := "  My   title ", otherModel, "Be brief."
	got := must(request[events.UpdateChatRequest, events.ChatReply](e, events.SubjectChatUpdate,
		events.UpdateChatRequest{UserID: user, ChatID: c.ID, Title: &title, Model: &model, SystemPrompt: &prompt}))(t).Chat
	if got.Title != "My title" || got.Model != otherModel || got.SystemPrompt != prompt {
		t.Errorf("updated chat = %+v", got)
	}
	// A user-set title is not replaced by the first message.
	r := must(send(e, user, c.ID, "first words of the first message", ""))(t)
	if got := must(getChat(e, user, c.ID))(t); got.Title != "My title" {
		t.Errorf("title after first message = %q", got.Title)
	}
	if r.AssistantMessage.Model != otherModel {
		t.Errorf("answer model = %s, want the updated model", r.AssistantMessage.Model)
	}
	updated := 0
	for _, row := range outbox(t, e) {
		if row.Subject == events.SubjectChatUpdated {
			updated++
		}
	}
	if updated != 1 {
		t.Errorf("chat.updated events = %d, want 1", updated)
	}
	unknown := "no/such-model"
	_, err := request[events.UpdateChatRequest, events.ChatReply](e, events.SubjectChatUpdate,
		events.UpdateChatRequest{UserID: user, ChatID: c.ID, Model: &unknown})
	wantCode(t, err, events.CodeUnknownModel)
}

func TestDeleteRemovesMessages(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	keep := mustCreate(t, e, user)
	r := exchange(t, e, user, c.ID, "q", "a")
	exchange(t, e, user, keep.ID, "q", "a")
	must(request[events.ChatRef, events.Empty](e, events.SubjectChatDelete, events.ChatRef{UserID: user, ChatID: c.ID}))(t)

	_, err := getChat(e, user, c.ID)
	wantCode(t, err, events.CodeNotFound)
	_, err = getMessage(e, user, r.UserMessage.ID)
	wantCode(t, err, events.CodeNotFound)
	if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE chat_id = ?", c.ID); n != 0 {
		t.Errorf("messages left = %d", n)
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM messages WHERE chat_id = ?", keep.ID); n != 2 {
		t.Errorf("other chat's messages = %d, want 2", n)
	}
	_, err = request[events.ChatRef, events.Empty](e, events.SubjectChatDelete, events.ChatRef{UserID: user, ChatID: c.ID})
	wantCode(t, err, events.CodeNotFound)
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)

	t.Run("pending", func(t *testing.T) {
		r := must(send(e, user, c.ID, "q", ""))(t)
		id := r.AssistantMessage.ID
		broadcasts := subscribeCancel(t, e, id)
		got := must(cancelMessage(e, user, id))(t)
		if got.Status != events.StatusCancelled || got.Content != "" || got.FinishedAt == nil {
			t.Errorf("cancelled = %+v", got)
		}
		waitBroadcast(t, broadcasts)
		ev, ok := lastGeneration(t, e, id)
		if !ok || ev.Type != events.GenDone || ev.Seq != 1 || ev.Message == nil || ev.Message.Status != events.StatusCancelled {
			t.Errorf("generation event = %+v (found %v), want done seq 1", ev, ok)
		}
		_, err := cancelMessage(e, user, id)
		wantCode(t, err, events.CodeNotRunning)
		_, err = startMessage(e, id)
		wantCode(t, err, events.CodeNotRunning)
	})

	t.Run("streaming", func(t *testing.T) {
		r := must(send(e, user, c.ID, "q2", ""))(t)
		id := r.AssistantMessage.ID
		must(startMessage(e, id))(t)
		broadcasts := subscribeCancel(t, e, id)
		got := must(cancelMessage(e, user, id))(t)
		if got.Status != events.StatusStreaming {
			t.Errorf("status = %s, want streaming (the worker completes it)", got.Status)
		}
		waitBroadcast(t, broadcasts)
		if ev, ok := lastGeneration(t, e, id); ok {
			t.Errorf("chat published %+v for a streaming answer", ev)
		}
		// The worker writing it died before it heard the cancel: the worker that takes
		// the answer over finds the request at start, and the answer ends cancelled.
		_, err := startMessage(e, id)
		wantCode(t, err, events.CodeNotRunning)
		stored := must(getMessage(e, user, id))(t)
		if stored.Status != events.StatusCancelled || stored.FinishedAt == nil {
			t.Errorf("after takeover: %+v, want cancelled", stored)
		}
		ev, ok := lastGeneration(t, e, id)
		if !ok || ev.Type != events.GenDone || ev.Message == nil || ev.Message.Status != events.StatusCancelled {
			t.Errorf("generation event = %+v (found %v), want done with the cancelled answer", ev, ok)
		}
	})

	t.Run("user message", func(t *testing.T) {
		list := must(listMessages(e, user, c.ID, 0, ""))(t)
		_, err := cancelMessage(e, user, list.Messages[0].ID)
		wantCode(t, err, events.CodeNotRunning)
	})
}

func TestRegenerate(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	_, err := regenerate(e, user, c.ID)
	wantCode(t, err, events.CodeConflict)

	r := must(send(e, user, c.ID, "q", ""))(t)
	_, err = regenerate(e, user, c.ID)
	wantCode(t, err, events.CodeGenerationInProgress)
	must(complete(e, events.CompleteMessageRequest{MessageID: r.AssistantMessage.ID, Status: events.StatusComplete, Content: "a"}))(t)

	again := must(regenerate(e, user, c.ID))(t)
	if again.Status != events.StatusPending || again.ID == r.AssistantMessage.ID || again.Role != events.RoleAssistant {
		t.Errorf("regenerated = %+v", again)
	}
	_, err = getMessage(e, user, r.AssistantMessage.ID)
	wantCode(t, err, events.CodeNotFound)
	list := must(listMessages(e, user, c.ID, 0, ""))(t)
	var ids []string
	for _, m := range list.Messages {
		ids = append(ids, m.ID)
	}
	if diff := cmp.Diff([]string{r.UserMessage.ID, again.ID}, ids); diff != "" {
		t.Errorf("messages after regenerate (-want +got):\n%s", diff)
	}
	var created []events.MessageCreated
	for _, row := range outbox(t, e) {
		if row.Subject == events.SubjectMessageCreated {
			var d events.MessageCreated
			mustUnmarshal(t, row.Event.Data, &d)
			created = append(created, d)
		}
	}
	if len(created) != 2 || created[1].AssistantMessageID != again.ID || created[1].UserMessageID != r.UserMessage.ID {
		t.Errorf("message.created events = %+v", created)
	}
	conv := must(request[events.ConversationRequest, events.ConversationReply](e, events.SubjectConversationGet,
		events.ConversationRequest{MessageID: again.ID}))(t)
	if diff := cmp.Diff([]events.Turn{{Role: events.RoleUser, Content: "q"}}, conv.Turns); diff != "" {
		t.Errorf("conversation of the new answer (-want +got):\n%s", diff)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	user := newUser()
	c := mustCreate(t, e, user)
	long := func(n int) string { return strings.Repeat("é", n) }
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"blank content", func() error { _, err := send(e, user, c.ID, " \n\t ", ""); return err }, events.CodeInvalidInput},
		{"32,001 characters", func() error { _, err := send(e, user, c.ID, long(32001), ""); return err }, events.CodeInvalidInput},
		{"NUL in content", func() error { _, err := send(e, user, c.ID, "a\x00b", ""); return err }, events.CodeInvalidInput},
		{"client id too long", func() error { _, err := send(e, user, c.ID, "hi", strings.Repeat("x", 65)); return err }, events.CodeInvalidInput},
		{"client id with space", func() error { _, err := send(e, user, c.ID, "hi", "a b"); return err }, events.CodeInvalidInput},
		{"title too long", func() error {
			_, err := createChat(e, events.CreateChatRequest{UserID: user, Title: long(201)})
			return err
		}, events.CodeInvalidInput},
		{"system prompt too long", func() error {
			p := long(8001)
			_, err := createChat(e, events.CreateChatRequest{UserID: user, SystemPrompt: &p})
			return err
		}, events.CodeInvalidInput},
		{"unknown model", func() error {
			_, err := createChat(e, events.CreateChatRequest{UserID: user, Model: "no/such-model"})
			return err
		}, events.CodeUnknownModel},
		{"limit too big", func() error { _, err := listChats(e, events.ListChatsRequest{UserID: user, Limit: 201}); return err }, events.CodeInvalidInput},
		{"negative limit", func() error { _, err := listMessages(e, user, c.ID, -1, ""); return err }, events.CodeInvalidInput},
		{"malformed chat id", func() error { _, err := getChat(e, user, "not-an-id"); return err }, events.CodeNotFound},
		{"empty chat id", func() error { _, err := getChat(e, user, ""); return err }, events.CodeNotFound},
		{"sql-ish chat id", func() error { _, err := send(e, user, "1' OR '1'='1", "hi", ""); return err }, events.CodeNotFound},
		{"unknown chat id", func() error { _, err := getChat(e, user, newUser()); return err }, events.CodeNotFound},
		{"malformed message id", func() error { _, err := getMessage(e, user, "42"); return err }, events.CodeNotFound},
		{"malformed cancel id", func() error { _, err := cancelMessage(e, user, strings.Repeat("a", 5000)); return err }, events.CodeNotFound},
		{"malformed conversation id", func() error {
			_, err := request[events.ConversationRequest, events.ConversationReply](e, events.SubjectConversationGet, events.ConversationRequest{MessageID: "x"})
			return err
		}, events.CodeNotFound},
		{"malformed complete id", func() error {
			_, err := complete(e, events.CompleteMessageRequest{MessageID: "x", Status: events.StatusComplete})
			return err
		}, events.CodeNotFound},
		{"no user", func() error { _, err := latest(e, ""); return err }, events.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), tt.code) })
	}
	if n := countRows(t, e, "SELECT COUNT(*) FROM messages"); n != 0 {
		t.Errorf("refused requests stored %d messages", n)
	}

	// The limits themselves are accepted, counted in characters, not bytes.
	r := must(send(e, user, c.ID, long(32000), strings.Repeat("~", 64)))(t)
	if got := len([]rune(r.UserMessage.Content)); got != 32000 {
		t.Errorf("stored %d characters", got)
	}
	p := long(8000)
	ok := must(createChat(e, events.CreateChatRequest{UserID: user, Title: long(200), SystemPrompt: &p, Model: otherModel}))(t)
	if ok.Model != otherModel {
		t.Errorf("model = %s", ok.Model)
	}
}

func TestReaperFailsAbandonedAnswers(t *testing.T) {
	e := newEnv(t, func(c *chat.Config) {
		c.GenerationTimeout = 300 * time.Millisecond
		c.ReapInterval = 100 * time.Millisecond
	})
	user := newUser()
	c := mustCreate(t, e, user)
	r := must(send(e, user, c.ID, "q", ""))(t)
	var got events.Message
	waitFor(t, "the answer to be failed", func() bool {
		got = must(getMessage(e, user, r.AssistantMessage.ID))(t)
		return got.Status == events.StatusFailed
	})
	if got.Error == nil || got.Error.Code != events.CodeGenerationAbandoned || got.Error.Message == "" {
		t.Errorf("abandoned answer error = %+v", got.Error)
	}
	waitFor(t, "the error event", func() bool {
		ev, ok := lastGeneration(t, e, got.ID)
		return ok && ev.Type == events.GenError && ev.Error != nil && ev.Error.Code == events.CodeGenerationAbandoned
	})
	// The user can go on.
	must(send(e, user, c.ID, "again", ""))(t)
}
