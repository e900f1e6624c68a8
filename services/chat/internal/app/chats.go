package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-chat/parley/libs/events"
)

// CreateChatInput is a new chat's settings; empty fields take defaults.
type CreateChatInput struct {
	UserID       string
	Model        string
	Title        string
	SystemPrompt string
}

// CreateChat creates a chat. Without a title it is "New chat", provisional until the
// first message names it.
func (s *Service) CreateChat(ctx context.Context, in CreateChatInput) (Chat, error) {
	if err := checkUser(in.UserID); err != nil {
		return Chat{}, err
	}
	c := Chat{ID: newID(), UserID: in.UserID, Title: DefaultTitle, TitleProvisional: true}
	if in.Title != "" {
		t, err := cleanTitle(in.Title)
		if err != nil {
			return Chat{}, err
		}
		c.Title, c.TitleProvisional = t, false
	}
	sp, err := cleanSystemPrompt(in.SystemPrompt)
	if err != nil {
		return Chat{}, err
	}
	c.SystemPrompt = sp
	if c.Model, err = s.resolveModel(ctx, in.Model); err != nil {
		return Chat{}, err
	}
	c.CreatedAt = s.now()
	c.UpdatedAt = c.CreatedAt
	if err := s.store.CreateChat(ctx, c); err != nil {
		return Chat{}, fmt.Errorf("create chat: %w", err)
	}
	return c, nil
}

// resolveModel validates a requested model, or picks the default one when empty.
func (s *Service) resolveModel(ctx context.Context, requested string) (string, error) {
	if requested != "" {
		m, err := cleanModel(requested)
		if err != nil {
			return "", err
		}
		requested = m
	}
	models, err := s.models.Models(ctx)
	if err != nil || len(models) == 0 {
		s.log.Warn("model catalogue unavailable", "request_id", events.RequestID(ctx), "err", err)
		switch {
		case s.cfg.DefaultModel == "":
			return "", ErrUnavailable
		case requested == "" || requested == s.cfg.DefaultModel:
			return s.cfg.DefaultModel, nil
		}
		return "", ErrUnavailable
	}
	if requested == "" {
		for _, m := range models {
			if m.Default {
				return m.ID, nil
			}
		}
		return models[0].ID, nil
	}
	if !slices.ContainsFunc(models, func(m events.Model) bool { return m.ID == requested }) {
		return "", &UnknownModelError{Model: requested}
	}
	return requested, nil
}

// ownedChat returns the chat when it belongs to userID, else ErrNotFound.
func ownedChat(c Chat, err error, userID string) (Chat, error) {
	if err != nil {
		return Chat{}, err
	}
	if c.UserID != userID {
		return Chat{}, ErrNotFound
	}
	return c, nil
}

func (s *Service) lockOwnedChat(ctx context.Context, tx Tx, userID, chatID string) (Chat, error) {
	c, err := tx.LockChat(ctx, chatID)
	return ownedChat(c, err, userID)
}

// Chat returns one of the user's chats.
func (s *Service) Chat(ctx context.Context, userID, chatID string) (Chat, error) {
	if err := checkUser(userID); err != nil {
		return Chat{}, err
	}
	if !validID(chatID) {
		return Chat{}, ErrNotFound
	}
	c, err := s.store.ChatByID(ctx, chatID)
	return ownedChat(c, err, userID)
}

// LatestChat returns the user's chat with the most recent activity.
func (s *Service) LatestChat(ctx context.Context, userID string) (Chat, error) {
	if err := checkUser(userID); err != nil {
		return Chat{}, err
	}
	c, err := s.store.LatestChat(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return Chat{}, ErrNoChats
	}
	return c, err
}

// ListChatsInput selects a page of chats.
type ListChatsInput struct {
	UserID string
	Limit  int
	Cursor string
	Query  string
}

// ListChats returns a page of the user's chats, newest activity first, and the cursor
// of the next page ("" at the end). A search page may hold fewer chats than asked for
// (even none) and still have a next cursor: the search bounds its work per page.
func (s *Service) ListChats(ctx context.Context, in ListChatsInput) ([]Chat, string, error) {
	if err := checkUser(in.UserID); err != nil {
		return nil, "", err
	}
	limit, err := pageSize(in.Limit)
	if err != nil {
		return nil, "", err
	}
	after, err := decodeChatCursor(in.Cursor)
	if err != nil {
		return nil, "", err
	}
	terms, err := searchTerms(in.Query)
	if err != nil {
		return nil, "", err
	}
	chats, resume, err := s.store.ListChats(ctx, in.UserID, ChatQuery{Limit: limit + 1, After: after, Terms: terms})
	if err != nil {
		return nil, "", fmt.Errorf("list chats: %w", err)
	}
	next := ""
	switch {
	case len(chats) > limit:
		chats = chats[:limit]
		last := chats[limit-1]
		next = encodeChatCursor(ChatCursor{UpdatedAt: last.UpdatedAt, ID: last.ID})
	case resume != nil:
		// A search that stopped early: the page may be short (even empty), and the
		// search goes on from where it stopped.
		next = encodeChatCursor(*resume)
	}
	return chats, next, nil
}

// UpdateChatInput changes a chat; nil fields stay as they are.
type UpdateChatInput struct {
	UserID       string
	ChatID       string
	Title        *string
	Model        *string
	SystemPrompt *string
}

// UpdateChat changes a chat's title (then no longer provisional), model (used from
// the next answer on) or system prompt, and announces it with chat.updated.
func (s *Service) UpdateChat(ctx context.Context, in UpdateChatInput) (Chat, error) {
	if err := checkUser(in.UserID); err != nil {
		return Chat{}, err
	}
	if !validID(in.ChatID) {
		return Chat{}, ErrNotFound
	}
	var title, model, prompt string
	var err error
	if in.Title != nil {
		if title, err = cleanTitle(*in.Title); err != nil {
			return Chat{}, err
		}
	}
	if in.SystemPrompt != nil {
		if prompt, err = cleanSystemPrompt(*in.SystemPrompt); err != nil {
			return Chat{}, err
		}
	}
	if in.Model != nil {
		if *in.Model == "" {
			return Chat{}, invalid("The model must not be empty.")
		}
		// Checked before the transaction: no connection is held across a NATS call.
		if model, err = s.resolveModel(ctx, *in.Model); err != nil {
			return Chat{}, err
		}
	}
	var out Chat
	err = s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := s.lockOwnedChat(ctx, tx, in.UserID, in.ChatID)
		if err != nil {
			return err
		}
		before := c
		if in.Title != nil {
			// A title the user chose is never replaced by a generated one.
			c.Title, c.TitleProvisional, c.TitleDueAt = title, false, nil
		}
		if in.Model != nil {
			c.Model = model
		}
		if in.SystemPrompt != nil {
			c.SystemPrompt = prompt
		}
		out = c
		if c == before {
			return nil
		}
		if err := tx.UpdateChat(ctx, c); err != nil {
			return fmt.Errorf("update chat: %w", err)
		}
		return addEvent(ctx, tx, events.SubjectChatUpdated, s.now(), events.ChatUpdated{UserID: c.UserID, Chat: c.Public()})
	})
	if err != nil {
		return Chat{}, err
	}
	return out, nil
}

// DeleteChat deletes a chat and all its messages. Answers still being written are
// told to stop.
func (s *Service) DeleteChat(ctx context.Context, userID, chatID string) error {
	if err := checkUser(userID); err != nil {
		return err
	}
	if !validID(chatID) {
		return ErrNotFound
	}
	var running []string
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := s.lockOwnedChat(ctx, tx, userID, chatID)
		if err != nil {
			return err
		}
		if running, err = tx.RunningAnswers(ctx, c.ID); err != nil {
			return err
		}
		return tx.DeleteChat(ctx, c.ID)
	})
	if err != nil {
		return err
	}
	for _, id := range running {
		if err := s.notify.BroadcastCancel(ctx, id); err != nil {
			s.log.Warn("broadcast cancel failed", "message_id", id, "request_id", events.RequestID(ctx), "err", err)
		}
	}
	return nil
}
