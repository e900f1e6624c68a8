package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/libs/events"
)

// ListMessages returns a page of a chat's messages, oldest first within the page; the
// first page is the newest. next is the cursor of the older page ("" when none).
func (s *Service) ListMessages(ctx context.Context, userID, chatID string, limit int, before string) (msgs []Message, next string, err error) {
	if err := checkUser(userID); err != nil {
		return nil, "", err
	}
	if !validID(chatID) {
		return nil, "", ErrNotFound
	}
	if limit, err = pageSize(limit); err != nil {
		return nil, "", err
	}
	beforeSeq, err := decodeMessageCursor(before)
	if err != nil {
		return nil, "", err
	}
	c, err := s.store.ChatByID(ctx, chatID)
	if _, err := ownedChat(c, err, userID); err != nil {
		return nil, "", err
	}
	msgs, err = s.store.Messages(ctx, chatID, beforeSeq, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		next = encodeMessageCursor(msgs[limit-1].Seq)
	}
	slices.Reverse(msgs)
	return msgs, next, nil
}

// SendInput is a user message to add to a chat.
type SendInput struct {
	UserID          string
	ChatID          string
	Content         string
	ClientMessageID string
}

// Send stores a user message and a pending answer, and announces message.created,
// all in one transaction. With a client_message_id already used by this user it
// creates nothing and returns the messages of the first call as they are now.
func (s *Service) Send(ctx context.Context, in SendInput) (user, answer Message, err error) {
	if err := checkUser(in.UserID); err != nil {
		return Message{}, Message{}, err
	}
	if !validID(in.ChatID) {
		return Message{}, Message{}, ErrNotFound
	}
	content, err := cleanContent(in.Content)
	if err != nil {
		return Message{}, Message{}, err
	}
	if err := checkClientMessageID(in.ClientMessageID); err != nil {
		return Message{}, Message{}, err
	}
	replay := false
	err = s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		replay = false
		// The chat row lock serialises sends (and regenerations) of one chat, so two
		// concurrent sends cannot both see no running answer.
		c, err := s.lockOwnedChat(ctx, tx, in.UserID, in.ChatID)
		if err != nil {
			return err
		}
		if in.ClientMessageID != "" {
			u, err := tx.MessageByClientID(ctx, in.UserID, in.ClientMessageID)
			switch {
			case err == nil:
				replay = true
				user = u
				answer, err = tx.AnswerTo(ctx, u.ID)
				if errors.Is(err, ErrNotFound) {
					err = nil // the answer of a replayed send may have been replaced
				}
				return err
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}
		hasMessages, running, err := tx.ChatActivity(ctx, c.ID)
		if err != nil {
			return err
		}
		if running {
			return ErrGenerationInProgress
		}
		now := s.now()
		user = Message{
			ID: newID(), ChatID: c.ID, UserID: c.UserID, Role: events.RoleUser, Content: content,
			Status: events.StatusComplete, ClientMessageID: in.ClientMessageID, CreatedAt: now,
		}
		answer = Message{
			ID: newID(), ChatID: c.ID, UserID: c.UserID, Role: events.RoleAssistant,
			Status: events.StatusPending, Model: c.Model, ReplyTo: user.ID, CreatedAt: now,
		}
		// One statement for both rows (their Seq is not needed here).
		if err := tx.InsertMessages(ctx, &user, &answer); err != nil {
			return fmt.Errorf("store user message and pending answer: %w", err)
		}
		if err := addEvent(ctx, tx, events.SubjectMessageCreated, now, events.MessageCreated{
			ChatID: c.ID, UserID: c.UserID, UserMessageID: user.ID, AssistantMessageID: answer.ID, Model: c.Model,
			RequestID: events.RequestID(ctx),
		}); err != nil {
			return err
		}
		c.UpdatedAt = later(c.UpdatedAt, now)
		if c.TitleProvisional && !hasMessages {
			// Still provisional: a later step derives a better title from the answer.
			c.Title = provisionalTitle(content)
		}
		if err := tx.UpdateChat(ctx, c); err != nil {
			return fmt.Errorf("update chat activity: %w", err)
		}
		return nil
	})
	if errors.Is(err, ErrConflict) && in.ClientMessageID != "" {
		// A concurrent send with the same client_message_id (to another chat) won the
		// unique key: answer with its result.
		user, err = s.store.MessageByClientID(ctx, in.UserID, in.ClientMessageID)
		if err != nil {
			return Message{}, Message{}, fmt.Errorf("re-read message after duplicate client id: %w", err)
		}
		answer, err = s.store.AnswerTo(ctx, user.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Message{}, Message{}, fmt.Errorf("re-read answer after duplicate client id: %w", err)
		}
		return user, answer, nil
	}
	if err != nil {
		return Message{}, Message{}, err
	}
	if replay {
		s.log.Info("send replayed", "request_id", events.RequestID(ctx), "message_id", user.ID)
	}
	return user, answer, nil
}

// Regenerate replaces the chat's last answer, which must be finished, with a new
// pending one replying to the same user message.
func (s *Service) Regenerate(ctx context.Context, userID, chatID string) (Message, error) {
	if err := checkUser(userID); err != nil {
		return Message{}, err
	}
	if !validID(chatID) {
		return Message{}, ErrNotFound
	}
	var answer Message
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := s.lockOwnedChat(ctx, tx, userID, chatID)
		if err != nil {
			return err
		}
		last, err := tx.LastMessage(ctx, c.ID)
		if errors.Is(err, ErrNotFound) {
			return ErrNothingToRegenerate
		}
		if err != nil {
			return err
		}
		if last.Role != events.RoleAssistant || last.ReplyTo == "" {
			return ErrNothingToRegenerate
		}
		if !events.Terminal(last.Status) {
			return ErrGenerationInProgress
		}
		if err := tx.DeleteMessage(ctx, last.ID); err != nil {
			return fmt.Errorf("delete replaced answer: %w", err)
		}
		now := s.now()
		answer = Message{
			ID: newID(), ChatID: c.ID, UserID: c.UserID, Role: events.RoleAssistant,
			Status: events.StatusPending, Model: c.Model, ReplyTo: last.ReplyTo, CreatedAt: now,
		}
		if err := tx.InsertMessage(ctx, &answer); err != nil {
			return fmt.Errorf("store pending answer: %w", err)
		}
		if err := addEvent(ctx, tx, events.SubjectMessageCreated, now, events.MessageCreated{
			ChatID: c.ID, UserID: c.UserID, UserMessageID: last.ReplyTo, AssistantMessageID: answer.ID, Model: c.Model,
			RequestID: events.RequestID(ctx),
		}); err != nil {
			return err
		}
		c.UpdatedAt = later(c.UpdatedAt, now)
		return tx.UpdateChat(ctx, c)
	})
	if err != nil {
		return Message{}, err
	}
	return answer, nil
}

// Message returns one of the user's messages.
func (s *Service) Message(ctx context.Context, userID, messageID string) (Message, error) {
	if err := checkUser(userID); err != nil {
		return Message{}, err
	}
	if !validID(messageID) {
		return Message{}, ErrNotFound
	}
	m, err := s.store.MessageByID(ctx, messageID)
	if err != nil {
		return Message{}, err
	}
	if m.UserID != userID {
		return Message{}, ErrNotFound
	}
	return m, nil
}

// Cancel stops an answer. A pending one is stored cancelled here (and `done` is
// published); a streaming one is completed by its worker, which the broadcast reaches.
func (s *Service) Cancel(ctx context.Context, userID, messageID string) (Message, error) {
	if err := checkUser(userID); err != nil {
		return Message{}, err
	}
	if !validID(messageID) {
		return Message{}, ErrNotFound
	}
	var out Message
	changed := false
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		changed = false
		m, c, err := tx.LockMessage(ctx, messageID)
		if err != nil {
			return err
		}
		if m.UserID != userID {
			return ErrNotFound
		}
		if m.Role != events.RoleAssistant || events.Terminal(m.Status) {
			return ErrNotRunning
		}
		out = m
		if m.Status != events.StatusPending {
			// A worker is writing it: it hears the broadcast below. Mark the request too,
			// so that a worker taking over from one that died stores it cancelled.
			if m.CancelRequestedAt == nil {
				now := s.now()
				out.CancelRequestedAt = &now
				return tx.UpdateMessage(ctx, out)
			}
			return nil
		}
		out, _, err = s.finishLocked(ctx, tx, m, c, Completion{Status: events.StatusCancelled})
		changed = err == nil
		return err
	})
	if err != nil {
		return Message{}, err
	}
	if changed {
		pub := out.Public()
		if err := s.notify.PublishGeneration(ctx, out.ID, events.GenerationEvent{Type: events.GenDone, Message: &pub}); err != nil {
			s.log.Warn("publish done after cancel failed", "message_id", out.ID, "request_id", events.RequestID(ctx), "err", err)
		}
	}
	if err := s.notify.BroadcastCancel(ctx, out.ID); err != nil {
		s.log.Warn("broadcast cancel failed", "message_id", out.ID, "request_id", events.RequestID(ctx), "err", err)
	}
	return out, nil
}
