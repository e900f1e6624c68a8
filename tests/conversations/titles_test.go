package conversations_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// titleRequests are the fake router's title requests about a question.
func titleRequests(hf *fakehf.Server, question string) []fakehf.Request {
	var out []fakehf.Request
	for _, r := range hf.ChatRequests() {
		if last := r.Chat.LastUser(); strings.HasPrefix(last, titleMarker) && strings.Contains(last, "User: "+question) {
			out = append(out, r)
		}
	}
	return out
}

// waitTitleEvent reads a chat's live events until a chat.updated with a title other
// than provisional arrives, and returns that chat.
func waitTitleEvent(t *testing.T, es *e2e.EventStream, provisional string) events.Chat {
	t.Helper()
	var got events.Chat
	es.Until(20*time.Second, func(ev e2e.Event) bool {
		if ev.Event != "chat.updated" {
			return false
		}
		var d events.ChatUpdated
		e2e.MustJSON(t, ev.Data, &d)
		got = d.Chat
		return d.Chat.Title != provisional
	})
	return got
}

// titleState reads the titler's columns of a chat.
func titleState(t *testing.T, sqlDB *sql.DB, chatID string) (due bool, attempts int) {
	t.Helper()
	var at *time.Time
	if err := sqlDB.QueryRow("SELECT title_due_at, title_attempts FROM chats WHERE id = ?", chatID).Scan(&at, &attempts); err != nil {
		t.Fatal(err)
	}
	return at != nil, attempts
}

func testTitles(t *testing.T, s *env) {
	ann := s.User("titles_ann").WithT(t)

	t.Run("generated after the first answer and pushed", func(t *testing.T) {
		c := createChat(t, ann, map[string]any{})
		es := ann.WithT(t).Open("/api/chats/" + c.ID + "/events")
		q := "Explain the borrow checker in Rust please, with examples and pitfalls"
		sent := ann.WithT(t).Send(c.ID, q)
		provisional := "Explain the borrow checker in Rust please, with"
		if got := getChat(t, ann, c.ID).Title; got != provisional {
			t.Errorf("title before the answer %q, want the first 8 words %q", got, provisional)
		}
		ann.WithT(t).Stream(sent.AssistantMessage.ID)
		got := waitTitleEvent(t, es, provisional)
		want := "About Explain the borrow"
		if got.Title != want || got.ID != c.ID {
			t.Errorf("chat.updated carries %q of %s, want %q", got.Title, got.ID, want)
		}
		if got := getChat(t, ann, c.ID).Title; got != want {
			t.Errorf("stored title %q, want %q", got, want)
		}
		reqs := titleRequests(s.hf, q)
		if len(reqs) != 1 {
			t.Fatalf("%d title requests, want 1", len(reqs))
		}
		r := reqs[0].Chat
		if r.Model != modelDefault || r.MaxTokens == nil || *r.MaxTokens > 64 || len(r.Messages) != 1 {
			t.Errorf("title request: model %s, max_tokens %v, %d messages", r.Model, r.MaxTokens, len(r.Messages))
		}
		answer := ann.WithT(t).Message(c.ID, sent.AssistantMessage.ID)
		if !strings.Contains(r.LastUser(), "Assistant: "+answer.Content) {
			t.Errorf("the title request lacks the answer: %q", r.LastUser())
		}

		// Later answers keep the title and ask for none.
		ask(t, ann, c.ID, "And lifetimes?")
		time.Sleep(500 * time.Millisecond)
		if n := len(titleRequests(s.hf, q)); n != 1 {
			t.Errorf("%d title requests after the second answer, want 1", n)
		}
		if got := getChat(t, ann, c.ID).Title; got != want {
			t.Errorf("title after the second answer %q", got)
		}
		if due, _ := titleState(t, s.SQL, c.ID); due {
			t.Error("a title is still due")
		}
	})

	t.Run("the first words stand when the model fails", func(t *testing.T) {
		c := createChat(t, ann, map[string]any{"model": modelTitles})
		// The answer is fine; the title request is refused for good.
		s.hf.Enqueue(modelTitles, fakehf.Step{}, fakehf.ErrorStep(http.StatusBadRequest, fakehf.BodyValidation))
		q := "Summarize the history of Lisbon in three short lines"
		ask(t, ann, c.ID, q)
		e2e.Eventually(t, 10*time.Second, "title request", func() error {
			if len(titleRequests(s.hf, q)) == 0 {
				return fmt.Errorf("none yet")
			}
			return nil
		})
		e2e.Eventually(t, 10*time.Second, "title job dropped", func() error {
			if due, n := titleState(t, s.SQL, c.ID); due || n != 1 {
				return fmt.Errorf("due %v after %d attempts", due, n)
			}
			return nil
		})
		if got, want := getChat(t, ann, c.ID).Title, "Summarize the history of Lisbon in three short"; got != want {
			t.Errorf("title %q, want the first words %q", got, want)
		}
	})

	t.Run("a transient failure is tried again", func(t *testing.T) {
		c := createChat(t, ann, map[string]any{"model": modelTitles})
		es := ann.WithT(t).Open("/api/chats/" + c.ID + "/events")
		s.hf.Enqueue(modelTitles, fakehf.Step{}, fakehf.ErrorStep(http.StatusServiceUnavailable, fakehf.BodyUnavailable))
		q := "Why is the sky blue"
		ask(t, ann, c.ID, q)
		// The first title request failed (503 is retried by the provider client, then
		// given up within the title timeout or answered); either way a title arrives.
		got := waitTitleEvent(t, es, q)
		if got.Title != "About Why is the" {
			t.Errorf("title %q", got.Title)
		}
	})

	t.Run("a title the user chose is kept", func(t *testing.T) {
		c := createChat(t, ann, map[string]any{"model": modelNemo})
		s.hf.Enqueue(modelNemo, fakehf.Step{Delay: time.Second})
		q := "Plan a week in Kyoto for me"
		sent := ann.WithT(t).Send(c.ID, q)
		ann.WithT(t).Call("PATCH", "/api/chats/"+c.ID, map[string]any{"title": "My Kyoto trip"}, http.StatusOK, nil)
		ann.WithT(t).Stream(sent.AssistantMessage.ID)
		time.Sleep(time.Second)
		if got := getChat(t, ann, c.ID).Title; got != "My Kyoto trip" {
			t.Errorf("title %q, want the user's", got)
		}
		if n := len(titleRequests(s.hf, q)); n != 0 {
			t.Errorf("%d title requests for a named chat", n)
		}
	})

	t.Run("a title interrupted by a restart is generated after it", func(t *testing.T) {
		c := createChat(t, ann, map[string]any{"model": modelNemo})
		// The answer, then a title request that hangs until chat has stopped.
		s.hf.Enqueue(modelNemo, fakehf.Step{}, fakehf.Step{Delay: 4 * time.Second})
		q := "Describe the rings of Saturn"
		ask(t, ann, c.ID, q)
		e2e.Eventually(t, 10*time.Second, "title request", func() error {
			if len(titleRequests(s.hf, q)) == 0 {
				return fmt.Errorf("none yet")
			}
			return nil
		})
		s.Chat.Stop()
		if due, _ := titleState(t, s.SQL, c.ID); !due {
			t.Error("the interrupted title is not due any more")
		}
		s.Chat.Start()
		e2e.Eventually(t, 20*time.Second, "title after restart", func() error {
			res, err := ann.Do("GET", "/api/chats/"+c.ID, nil)
			if err != nil || res.Status != http.StatusOK {
				return fmt.Errorf("get chat: %v %d", err, res.Status)
			}
			var rep events.ChatReply
			if err := json.Unmarshal(res.Body, &rep); err != nil {
				return err
			}
			if rep.Chat.Title != "About Describe the rings" {
				return fmt.Errorf("title %q", rep.Chat.Title)
			}
			return nil
		})
	})
}
