package conversations_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/libs/events"
)

// TestConversations runs every scenario against one running product; each scenario
// has users of its own.
func TestConversations(t *testing.T) {
	s := newStack(t)
	t.Run("list", func(t *testing.T) { testList(t, s) })
	t.Run("search", func(t *testing.T) { testSearch(t, s) })
	t.Run("search beyond a page's budget", func(t *testing.T) { testSearchBudget(t, s) })
	t.Run("rename", func(t *testing.T) { testRename(t, s) })
	t.Run("delete", func(t *testing.T) { testDelete(t, s) })
	t.Run("export", func(t *testing.T) { testExport(t, s) })
	t.Run("titles", func(t *testing.T) { testTitles(t, s) })
	t.Run("models", func(t *testing.T) { testModels(t, s) })
	t.Run("system prompt", func(t *testing.T) { testSystemPrompt(t, s) })
	t.Run("context window", func(t *testing.T) { testContextWindow(t, s) })
}

func testList(t *testing.T, s *env) {
	ann := s.User("list_ann").WithT(t)
	bob := s.User("list_bob").WithT(t)
	var chats []events.Chat
	for i := range 7 {
		chats = append(chats, createChat(t, ann, map[string]any{"title": fmt.Sprintf("history %d", i)}))
	}
	want := []string{"history 6", "history 5", "history 4", "history 3", "history 2", "history 1", "history 0"}
	for _, limit := range []int{1, 3, 7, 50} {
		if diff := cmp.Diff(want, listAll(t, ann, "", limit)); diff != "" {
			t.Errorf("limit %d (-want +got):\n%s", limit, diff)
		}
	}

	// New activity moves a chat to the top.
	ask(t, ann, chats[2].ID, "hello again")
	want = []string{"history 2", "history 6", "history 5", "history 4", "history 3", "history 1", "history 0"}
	if diff := cmp.Diff(want, listAll(t, ann, "", 3)); diff != "" {
		t.Errorf("after activity (-want +got):\n%s", diff)
	}
	if got := listAll(t, bob, "", 10); len(got) != 0 {
		t.Errorf("bob lists %v", got)
	}

	for _, q := range []string{"limit=0", "limit=-1", "limit=x", "cursor=bm9wZQ", "cursor=" + strings.Repeat("a", 300)} {
		res, err := ann.Do("GET", "/api/chats?"+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusBadRequest {
			t.Errorf("GET /api/chats?%s: status %d, want 400: %s", q, res.Status, res.Body)
		}
	}
}

func testSearch(t *testing.T, s *env) {
	ann := s.User("search_ann").WithT(t)
	bob := s.User("search_bob").WithT(t)

	createChat(t, ann, map[string]any{"title": "Quokka facts"})
	travel := createChat(t, ann, map[string]any{"title": "Travel plans"})
	ask(t, ann, travel.ID, "What is the capital of France?")
	for i := 1; i <= 3; i++ {
		c := createChat(t, ann, map[string]any{"title": fmt.Sprintf("wombat %d", i)})
		ask(t, ann, c.ID, fmt.Sprintf("Tell me about wombats, part %d", i))
	}
	tips := createChat(t, ann, map[string]any{"title": "Tips"})
	ask(t, ann, tips.ID, "go is fun; what else?")
	// Bob's chat holds every word searched below: none of it may show up for Ann.
	other := createChat(t, bob, map[string]any{"title": "Quokka of Bob"})
	ask(t, bob, other.ID, "quokka wombats paris capital France Bob")

	wombats := []string{"wombat 3", "wombat 2", "wombat 1"}
	cases := []struct {
		name, q string
		want    []string
	}{
		{"title", "quokka", []string{"Quokka facts"}},
		{"any case", "QUOKKA", []string{"Quokka facts"}},
		{"word prefix", "quok", []string{"Quokka facts"}},
		{"question text", "capital france", []string{"Travel plans"}},
		{"answer text only", "paris", []string{"Travel plans"}},
		{"several chats, newest first", "wombats", wombats},
		{"every term in one message", "wombats paris", nil},
		{"short word", "go", []string{"Tips"}},
		{"operators are plain text", `+"quokka" -facts* (~@<>)`, []string{"Quokka facts"}},
		{"no match", "zebra", nil},
		{"nothing but punctuation lists all", "+-*", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := listAll(t, ann, tc.q, 2)
			if tc.name == "nothing but punctuation lists all" {
				if len(got) != 6 {
					t.Errorf("q=%q: %d chats, want all 6: %v", tc.q, len(got), got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("q=%q (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	if got := listAll(t, bob, "quokka", 50); len(got) != 1 || got[0] != "Quokka of Bob" {
		t.Errorf("bob's search: %v", got)
	}
	res, _ := ann.Do("GET", "/api/chats?q="+url.QueryEscape(strings.Repeat("x", 201)), nil)
	if res.Status != http.StatusBadRequest {
		t.Errorf("an over-long q: status %d, want 400", res.Status)
	}
}

// testSearchBudget: a search reads a bounded number of chats per page. One whose
// terms are all too short for the full-text index returns short pages with a cursor
// until it has read the whole history; a rare indexed word is found through the index.
func testSearchBudget(t *testing.T, s *env) {
	ann := s.User("budget_ann").WithT(t)
	// One letter is below any server's full-text minimum word length.
	createChat(t, ann, map[string]any{"title": "Q branch"})
	createChat(t, ann, map[string]any{"title": "Zanzibar trip"})
	for i := range 450 {
		createChat(t, ann, map[string]any{"title": fmt.Sprintf("plain %d", i)})
	}
	pages := func(q string) (titles []string, n int) {
		cursor := ""
		for n = 1; n < 50; n++ {
			v := url.Values{"limit": {"50"}, "q": {q}}
			if cursor != "" {
				v.Set("cursor", cursor)
			}
			var rep events.ListChatsReply
			ann.Call("GET", "/api/chats?"+v.Encode(), nil, http.StatusOK, &rep)
			for _, c := range rep.Chats {
				titles = append(titles, c.Title)
			}
			if rep.NextCursor == "" {
				return titles, n
			}
			cursor = rep.NextCursor
		}
		t.Fatalf("q=%q: no end after %d pages", q, n)
		return nil, n
	}
	got, n := pages("q")
	if diff := cmp.Diff([]string{"Q branch"}, got); diff != "" {
		t.Errorf("q=q (-want +got):\n%s", diff)
	}
	if n < 2 {
		t.Errorf("q=q: %d page, want the search cut into bounded pages", n)
	}
	got, n = pages("zanzibar")
	if diff := cmp.Diff([]string{"Zanzibar trip"}, got); diff != "" || n != 1 {
		t.Errorf("q=zanzibar in %d pages (-want +got):\n%s", n, diff)
	}
}

func testRename(t *testing.T, s *env) {
	ann := s.User("rename_ann").WithT(t)
	bob := s.User("rename_bob").WithT(t)
	c := createChat(t, ann, map[string]any{})
	if c.Title != "New chat" {
		t.Errorf("new chat's title %q", c.Title)
	}
	var rep events.ChatReply
	ann.Call("PATCH", "/api/chats/"+c.ID, map[string]any{"title": "  Renamed \n  chat "}, http.StatusOK, &rep)
	if rep.Chat.Title != "Renamed chat" {
		t.Errorf("renamed to %q", rep.Chat.Title)
	}
	if got := getChat(t, ann, c.ID).Title; got != "Renamed chat" {
		t.Errorf("read back %q", got)
	}
	if got := listAll(t, ann, "renamed", 10); len(got) != 1 {
		t.Errorf("search by the new title: %v", got)
	}
	for _, body := range []map[string]any{{"title": ""}, {"title": "   "}, {"title": strings.Repeat("é", 201)}} {
		res, _ := ann.Do("PATCH", "/api/chats/"+c.ID, body)
		if res.Status != http.StatusBadRequest || res.Code() != events.CodeInvalidInput {
			t.Errorf("PATCH %v: %d %s, want 400 invalid_input", body, res.Status, res.Body)
		}
	}
	res, _ := bob.Do("PATCH", "/api/chats/"+c.ID, map[string]any{"title": "mine"})
	if res.Status != http.StatusNotFound {
		t.Errorf("bob renames ann's chat: %d, want 404", res.Status)
	}
	if got := getChat(t, ann, c.ID).Title; got != "Renamed chat" {
		t.Errorf("after bob's try: %q", got)
	}
}

func testDelete(t *testing.T, s *env) {
	ann := s.User("delete_ann").WithT(t)
	bob := s.User("delete_bob").WithT(t)
	keep := createChat(t, ann, map[string]any{"title": "Keep me"})
	ask(t, ann, keep.ID, "armadillo one")
	doomed := createChat(t, ann, map[string]any{"title": "Doomed"})
	ask(t, ann, doomed.ID, "armadillo two")
	ask(t, ann, doomed.ID, "armadillo three")

	if res, _ := bob.Do("DELETE", "/api/chats/"+doomed.ID, nil); res.Status != http.StatusNotFound {
		t.Errorf("bob deletes ann's chat: %d, want 404", res.Status)
	}
	ann.Call("DELETE", "/api/chats/"+doomed.ID, nil, http.StatusNoContent, nil)
	for _, path := range []string{"/api/chats/" + doomed.ID, "/api/chats/" + doomed.ID + "/messages", "/api/chats/" + doomed.ID + "/export"} {
		if res, _ := ann.Do("GET", path, nil); res.Status != http.StatusNotFound {
			t.Errorf("GET %s after delete: %d, want 404", path, res.Status)
		}
	}
	if res, _ := ann.Do("DELETE", "/api/chats/"+doomed.ID, nil); res.Status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", res.Status)
	}
	if diff := cmp.Diff([]string{"Keep me"}, listAll(t, ann, "armadillo", 10)); diff != "" {
		t.Errorf("search after delete (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Keep me"}, listAll(t, ann, "", 10)); diff != "" {
		t.Errorf("list after delete (-want +got):\n%s", diff)
	}
	// The chat service removed the rows themselves, not just hid them.
	var chats, msgs, kept int
	if err := s.SQL.QueryRow("SELECT COUNT(*) FROM chats WHERE id = ?", doomed.ID).Scan(&chats); err != nil {
		t.Fatal(err)
	}
	if err := s.SQL.QueryRow("SELECT COUNT(*) FROM messages WHERE chat_id = ?", doomed.ID).Scan(&msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.SQL.QueryRow("SELECT COUNT(*) FROM messages WHERE chat_id = ?", keep.ID).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if chats != 0 || msgs != 0 || kept != 2 {
		t.Errorf("rows left: %d chats and %d messages of the deleted chat, %d of the kept one (want 0, 0, 2)", chats, msgs, kept)
	}
}

func testExport(t *testing.T, s *env) {
	ann := s.User("export_ann").WithT(t)
	bob := s.User("export_bob").WithT(t)
	c := createChat(t, ann, map[string]any{"title": "Export: me & you"})
	a1 := ask(t, ann, c.ID, "First *question*")
	a2 := ask(t, ann, c.ID, "Second question")
	msgs := ann.Messages(c.ID)
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 4", len(msgs))
	}

	res := ann.Call("GET", "/api/chats/"+c.ID+"/export?format=json", nil, http.StatusOK, nil)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("json content type %q", ct)
	}
	if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".json") {
		t.Errorf("json disposition %q", cd)
	}
	var doc struct {
		Chat       events.Chat      `json:"chat"`
		Messages   []events.Message `json:"messages"`
		ExportedAt time.Time        `json:"exported_at"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		t.Fatalf("decode export: %v", err)
	}
	if doc.Chat.ID != c.ID || doc.Chat.Title != "Export: me & you" || doc.ExportedAt.IsZero() {
		t.Errorf("exported chat %+v at %v", doc.Chat, doc.ExportedAt)
	}
	if diff := cmp.Diff(msgs, doc.Messages); diff != "" {
		t.Errorf("exported messages (-listed +exported):\n%s", diff)
	}
	for _, m := range doc.Messages {
		if m.Role == events.RoleAssistant && (m.Model != modelDefault || m.Usage == nil) {
			t.Errorf("exported answer without its model or usage: %+v", m)
		}
	}

	res = ann.Call("GET", "/api/chats/"+c.ID+"/export?format=markdown", nil, http.StatusOK, nil)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/markdown") {
		t.Errorf("markdown content type %q", ct)
	}
	md := string(res.Body)
	for _, want := range []string{"# Export: me & you\n", "- Model: " + modelDefault, "### You", "First *question*", "Second question",
		"### Assistant (" + modelDefault + ")", a1.Content, a2.Content} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown export lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "First *question*") > strings.Index(md, "Second question") {
		t.Error("markdown export is not oldest first")
	}
	if res, _ := ann.Do("GET", "/api/chats/"+c.ID+"/export?format=pdf", nil); res.Status != http.StatusBadRequest {
		t.Errorf("format=pdf: %d, want 400", res.Status)
	}
	if res, _ := bob.Do("GET", "/api/chats/"+c.ID+"/export", nil); res.Status != http.StatusNotFound {
		t.Errorf("bob exports ann's chat: %d, want 404", res.Status)
	}
}
