package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/libs/events"
)

// Conversation is what a model must see to write one answer.
type Conversation struct {
	Chat   Chat
	Answer Message
	Turns  []events.Turn
}

// Conversation returns the chat's own history before the answer: user messages and
// finished (or cancelled, non-empty) answers, oldest first, never anything of another
// chat. When the text exceeds the configured budget the oldest turns are dropped.
func (s *Service) Conversation(ctx context.Context, messageID string) (Conversation, error) {
	if !validID(messageID) {
		return Conversation{}, ErrNotFound
	}
	m, err := s.store.MessageByID(ctx, messageID)
	if err != nil {
		return Conversation{}, err
	}
	if m.Role != events.RoleAssistant {
		return Conversation{}, ErrNotFound
	}
	c, err := s.store.ChatByID(ctx, m.ChatID)
	if err != nil {
		return Conversation{}, err
	}
	history, err := s.store.History(ctx, c.ID, m.Seq)
	if err != nil {
		return Conversation{}, fmt.Errorf("read history: %w", err)
	}
	return s.conversation(c, m, history)
}

// conversation builds what the model sees from the answer m of chat c and the
// messages before it.
func (s *Service) conversation(c Chat, m Message, history []Message) (Conversation, error) {
	var turns []events.Turn
	for _, h := range history {
		if h.ChatID != c.ID { // the store filters by chat; this guards the invariant
			return Conversation{}, fmt.Errorf("history of chat %s holds message %s of chat %s", c.ID, h.ID, h.ChatID)
		}
		switch {
		case h.Role == events.RoleUser,
			h.Role == events.RoleAssistant && h.Status == events.StatusComplete,
			h.Role == events.RoleAssistant && h.Status == events.StatusCancelled && strings.TrimSpace(h.Content) != "":
			turns = append(turns, events.Turn{Role: h.Role, Content: h.Content})
		}
	}
	size := 0
	for i := len(turns) - 1; i >= 0; i-- {
		size += len(turns[i].Content)
		if size > s.cfg.ConversationMaxBytes && i < len(turns)-1 {
			turns = turns[i+1:]
			break
		}
	}
	if turns == nil {
		turns = []events.Turn{}
	}
	return Conversation{Chat: c, Answer: m, Turns: turns}, nil
}

// StartInput is a worker starting (or restarting) an answer.
type StartInput struct {
	MessageID string
	// AttemptID names the attempt; it becomes the answer's current one ("" keeps none).
	AttemptID string
	// WithConversation asks for the conversation too.
	WithConversation bool
}

// Started is an answer a worker may write.
type Started struct {
	Message Message
	// Conversation is set when asked for.
	Conversation *Conversation
	// FirstStart says the answer was pending: no attempt had started it.
	FirstStart bool
}

// maxAttemptIDChars bounds an attempt id.
const maxAttemptIDChars = 64

// Start marks an answer as streaming and records the attempt writing it; a finished
// answer is ErrNotRunning. A pending answer (the usual case) is started with one
// statement, no transaction; the conversation, when asked for, is read with one more
// query.
func (s *Service) Start(ctx context.Context, in StartInput) (Started, error) {
	if !validID(in.MessageID) {
		return Started{}, ErrNotFound
	}
	if len(in.AttemptID) > maxAttemptIDChars {
		return Started{}, invalid("attempt_id is longer than %d characters.", maxAttemptIDChars)
	}
	ok, err := s.store.StartPending(ctx, in.MessageID, in.AttemptID)
	if err != nil {
		return Started{}, err
	}
	if ok {
		out := Started{FirstStart: true}
		if !in.WithConversation {
			if out.Message, err = s.store.MessageByID(ctx, in.MessageID); err != nil {
				return Started{}, fmt.Errorf("read started answer: %w", err)
			}
			return out, nil
		}
		c, thread, err := s.store.Thread(ctx, in.MessageID)
		if err != nil {
			return Started{}, fmt.Errorf("read started answer: %w", err)
		}
		out.Message = thread[len(thread)-1]
		conv, err := s.conversation(c, out.Message, thread[:len(thread)-1])
		if err != nil {
			return Started{}, err
		}
		out.Conversation = &conv
		return out, nil
	}
	return s.restart(ctx, in)
}

// restart is Start for an answer that is not simply pending: already streaming (a
// redelivery, perhaps taking over from a worker presumed dead), finished, cancelled
// while its worker was gone, or missing.
func (s *Service) restart(ctx context.Context, in StartInput) (Started, error) {
	var out Message
	var chat Chat
	cancelled, first := false, false
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		cancelled, first = false, false
		m, c, err := tx.LockMessage(ctx, in.MessageID)
		if err != nil {
			return err
		}
		chat = c
		if m.Role != events.RoleAssistant {
			return ErrNotFound
		}
		if events.Terminal(m.Status) {
			return ErrNotRunning
		}
		if m.CancelRequestedAt != nil {
			// Cancelled while a worker that has since gone was writing it.
			out, _, err = s.finishLocked(ctx, tx, m, c, Completion{Status: events.StatusCancelled, Content: m.Content})
			cancelled = err == nil
			return err
		}
		out = m
		first = m.Status == events.StatusPending
		if m.Status == events.StatusStreaming && (in.AttemptID == "" || m.AttemptID == in.AttemptID) {
			return nil
		}
		out.Status = events.StatusStreaming
		if in.AttemptID != "" {
			out.AttemptID = in.AttemptID
		}
		return tx.UpdateMessage(ctx, out)
	})
	if err != nil {
		return Started{}, err
	}
	if cancelled {
		pub := out.Public()
		if err := s.notify.PublishGeneration(ctx, out.ID, events.GenerationEvent{Type: events.GenDone, Message: &pub}); err != nil {
			s.log.Warn("publish done after cancel failed", "message_id", out.ID, "err", err)
		}
		return Started{}, ErrNotRunning
	}
	res := Started{Message: out, FirstStart: first}
	if in.WithConversation {
		history, err := s.store.History(ctx, chat.ID, out.Seq)
		if err != nil {
			return Started{}, fmt.Errorf("read history: %w", err)
		}
		conv, err := s.conversation(chat, out, history)
		if err != nil {
			return Started{}, err
		}
		res.Conversation = &conv
	}
	return res, nil
}

// Completion is the final state of an answer.
type Completion struct {
	Status  string
	Content string
	Model   string
	Error   *events.Error
	Usage   *events.Usage
	// AttemptID, when set, must be the answer's current attempt (ErrStaleAttempt
	// otherwise).
	AttemptID string
	// ChatID, when set, is the answer's chat, saving its lookup (ignored if wrong).
	ChatID string
}

// Complete stores an answer's final state. It is idempotent: an answer already
// finished is returned unchanged (changed = false).
func (s *Service) Complete(ctx context.Context, messageID string, in Completion) (out Message, changed bool, err error) {
	if !validID(messageID) {
		return Message{}, false, ErrNotFound
	}
	switch in.Status {
	case events.StatusComplete, events.StatusCancelled, events.StatusFailed:
	default:
		return Message{}, false, invalid("status must be complete, cancelled or failed.")
	}
	titleDue := false
	err = s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		changed, titleDue = false, false
		var m Message
		var c Chat
		err := ErrNotFound
		if validID(in.ChatID) {
			m, c, err = tx.LockMessageIn(ctx, in.ChatID, messageID)
		}
		if errors.Is(err, ErrNotFound) {
			m, c, err = tx.LockMessage(ctx, messageID)
		}
		if err != nil {
			return err
		}
		if m.Role != events.RoleAssistant {
			return ErrNotFound
		}
		if in.AttemptID != "" && m.AttemptID != "" && in.AttemptID != m.AttemptID {
			// Another attempt took the answer over: its text is the one clients saw.
			return ErrStaleAttempt
		}
		if events.Terminal(m.Status) {
			out = m
			return nil
		}
		out, titleDue, err = s.finishLocked(ctx, tx, m, c, in)
		changed = err == nil
		return err
	})
	if err != nil {
		return Message{}, false, err
	}
	if titleDue {
		s.wakeTitler()
	}
	return out, changed, nil
}

// finishLocked stores the terminal state of a locked, running answer, bumps the chat's
// activity and writes message.completed, all in the caller's transaction. The first
// complete answer of a chat whose title is still provisional makes a generated title
// due (titleDue).
func (s *Service) finishLocked(ctx context.Context, tx Tx, m Message, c Chat, in Completion) (_ Message, titleDue bool, _ error) {
	now := s.now()
	m.Status = in.Status
	m.Content = strings.ToValidUTF8(in.Content, "\uFFFD")
	if in.Model != "" {
		m.Model = truncateRunes(in.Model, maxModelChars)
	}
	m.ErrorCode, m.ErrorMessage = "", ""
	if in.Error != nil {
		m.ErrorCode = truncateRunes(in.Error.Code, maxErrorCodeChars)
		m.ErrorMessage = truncateRunes(strings.ToValidUTF8(in.Error.Message, "\uFFFD"), maxErrorMsgChars)
	}
	if m.Status == events.StatusFailed && m.ErrorCode == "" {
		m.ErrorCode, m.ErrorMessage = events.CodeProviderError, "The answer could not be written."
	}
	m.Usage = in.Usage
	m.FinishedAt = &now
	// Two UPDATEs, not one multi-table UPDATE: MariaDB runs those through a temporary
	// table (a file created and removed per statement).
	if err := tx.UpdateMessage(ctx, m); err != nil {
		return Message{}, false, fmt.Errorf("store finished answer: %w", err)
	}
	c.UpdatedAt = later(c.UpdatedAt, now)
	if m.Status == events.StatusComplete && c.TitleProvisional && c.TitleDueAt == nil && c.TitleAttempts == 0 {
		c.TitleDueAt, titleDue = &now, true
	}
	if err := tx.UpdateChat(ctx, c); err != nil {
		return Message{}, false, fmt.Errorf("update chat activity: %w", err)
	}
	if err := addEvent(ctx, tx, events.SubjectMessageCompleted, now, events.MessageCompleted{
		ChatID: c.ID, UserID: c.UserID, Message: m.Public(),
	}); err != nil {
		return Message{}, false, err
	}
	return m, titleDue, nil
}

// abandonedMessage is what a user reads on an answer the reaper failed.
const abandonedMessage = "The answer took too long and was abandoned. Please try again."

// Reap fails the answers stuck in pending or streaming for longer than the generation
// timeout, through the idempotent completion, and publishes their `error` event. It
// returns how many it failed.
func (s *Service) Reap(ctx context.Context) (int, error) {
	ids, err := s.store.Abandoned(ctx, s.now().Add(-s.cfg.GenerationTimeout), 100)
	if err != nil {
		return 0, fmt.Errorf("find abandoned answers: %w", err)
	}
	n := 0
	for _, id := range ids {
		e := &events.Error{Code: events.CodeGenerationAbandoned, Message: abandonedMessage}
		var content string
		if m, err := s.store.MessageByID(ctx, id); err == nil {
			content = m.Content
		}
		m, changed, err := s.Complete(ctx, id, Completion{Status: events.StatusFailed, Content: content, Error: e})
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("fail abandoned answer %s: %w", id, err)
		}
		if !changed {
			continue // finished meanwhile, by its worker or another replica
		}
		n++
		s.log.Warn("answer abandoned", "message_id", id, "chat_id", m.ChatID)
		pub := m.Public()
		if err := s.notify.PublishGeneration(ctx, id, events.GenerationEvent{Type: events.GenError, Error: e, Message: &pub}); err != nil {
			s.log.Warn("publish error event of abandoned answer failed", "message_id", id, "err", err)
		}
	}
	return n, nil
}
