package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/libs/events"
)

// Titler tuning.
const (
	// TitleAttempts is how many times a title is asked for before the first words of
	// the first message are kept for good.
	TitleAttempts = 3
	// titleLease is how long a claimed title job belongs to one titler: longer than a
	// title request may take, so a titler that died leaves it to another one.
	titleLease = 2 * time.Minute
	// titleRetryBase is the wait before the second attempt (doubled for the third).
	titleRetryBase = 15 * time.Second
	// titleExcerptChars bounds the question and the answer sent to the model.
	titleExcerptChars = 2000
)

// TitleWake receives a value when an answer made a generated title due, so that the
// titler starts at once instead of at its next poll.
func (s *Service) TitleWake() <-chan struct{} { return s.titleWake }

func (s *Service) wakeTitler() {
	select {
	case s.titleWake <- struct{}{}:
	default:
	}
}

// GenerateTitles claims up to limit chats that want a generated title and asks their
// model for one, at most concurrency at a time; it returns how many it claimed. A
// title is stored (and announced with chat.updated) only while the chat's title is
// still provisional; when the model fails TitleAttempts times, or cannot write titles,
// the first words of the first message stand.
func (s *Service) GenerateTitles(ctx context.Context, titler Titler, limit, concurrency int, timeout time.Duration) (int, error) {
	now := s.now()
	jobs, err := s.store.ClaimTitleJobs(ctx, now, now.Add(titleLease), limit)
	if err != nil {
		return 0, fmt.Errorf("claim title jobs: %w", err)
	}
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.titleJob(ctx, titler, j, timeout)
		})
	}
	wg.Wait()
	return len(jobs), nil
}

// titleJob handles one claimed chat; failures are logged, never returned: the chat
// keeps its provisional title.
func (s *Service) titleJob(ctx context.Context, titler Titler, j TitleJob, timeout time.Duration) {
	log := s.log.With("chat_id", j.ChatID, "attempt", j.Attempt)
	c, err := s.store.ChatByID(ctx, j.ChatID)
	if errors.Is(err, ErrNotFound) {
		return // deleted meanwhile
	}
	if err != nil {
		log.Warn("title: read chat", "err", err)
		s.retryTitle(ctx, j, "")
		return
	}
	if !c.TitleProvisional {
		s.dropTitleJob(ctx, j.ChatID)
		return
	}
	q, a, err := s.store.FirstExchange(ctx, j.ChatID)
	if errors.Is(err, ErrNotFound) {
		s.dropTitleJob(ctx, j.ChatID)
		return
	}
	if err != nil {
		log.Warn("title: read first exchange", "err", err)
		s.retryTitle(ctx, j, "")
		return
	}
	model := a.Model
	if model == "" {
		model = c.Model
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	raw, err := titler.GenerateTitle(tctx, events.TitleRequest{
		ChatID: c.ID, Model: model,
		Question: excerpt(q.Content, titleExcerptChars), Answer: excerpt(a.Content, titleExcerptChars),
	})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			// Stopping: hand the job back at once for the next start or another replica.
			s.releaseTitleJob(ctx, j.ChatID)
			return
		}
		if !errors.Is(err, ErrUnavailable) {
			log.Warn("title: the model cannot write one; the first words stay", "model", model, "err", err)
			s.dropTitleJob(ctx, j.ChatID)
			return
		}
		log.Warn("title: the model did not write one", "model", model, "err", err)
		s.retryTitle(ctx, j, err.Error())
		return
	}
	title := events.CleanTitle(raw)
	if title == "" {
		log.Info("title: the model wrote none; the first words stay", "model", model)
		s.dropTitleJob(ctx, j.ChatID)
		return
	}
	if err := s.setGeneratedTitle(ctx, j.ChatID, title); err != nil && !errors.Is(err, ErrNotFound) {
		log.Warn("title: store", "err", err)
		s.retryTitle(ctx, j, err.Error())
		return
	}
	log.Info("title generated", "model", model)
}

// setGeneratedTitle stores a generated title if the chat's title is still provisional.
func (s *Service) setGeneratedTitle(ctx context.Context, chatID, title string) error {
	return s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := tx.LockChat(ctx, chatID)
		if err != nil {
			return err
		}
		c.TitleDueAt = nil
		if !c.TitleProvisional {
			return tx.UpdateChat(ctx, c) // the user named it meanwhile
		}
		c.Title, c.TitleProvisional = title, false
		if err := tx.UpdateChat(ctx, c); err != nil {
			return fmt.Errorf("store title: %w", err)
		}
		return addEvent(ctx, tx, events.SubjectChatUpdated, s.now(), events.ChatUpdated{UserID: c.UserID, Chat: c.Public()})
	})
}

// retryTitle schedules the next attempt, or gives up after TitleAttempts.
func (s *Service) retryTitle(ctx context.Context, j TitleJob, reason string) {
	ctx = context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := tx.LockChat(ctx, j.ChatID)
		if err != nil {
			return err
		}
		if j.Attempt >= TitleAttempts || !c.TitleProvisional {
			c.TitleDueAt = nil
		} else {
			at := s.now().Add(titleRetryBase << (j.Attempt - 1))
			c.TitleDueAt = &at
		}
		return tx.UpdateChat(ctx, c)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("title: schedule retry", "chat_id", j.ChatID, "err", err)
	}
	if j.Attempt >= TitleAttempts {
		s.log.Warn("title: giving up; the first words stay", "chat_id", j.ChatID, "attempts", j.Attempt, "reason", reason)
	}
}

// releaseTitleJob makes a claimed job due again at once (a clean stop).
func (s *Service) releaseTitleJob(ctx context.Context, chatID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := tx.LockChat(ctx, chatID)
		if err != nil {
			return err
		}
		if c.TitleDueAt == nil {
			return nil
		}
		now := s.now()
		c.TitleDueAt = &now
		if c.TitleAttempts > 0 {
			c.TitleAttempts-- // an interrupted try does not count
		}
		return tx.UpdateChat(ctx, c)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("title: release job", "chat_id", chatID, "err", err)
	}
}

// dropTitleJob says no generated title is wanted any more.
func (s *Service) dropTitleJob(ctx context.Context, chatID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		c, err := tx.LockChat(ctx, chatID)
		if err != nil {
			return err
		}
		c.TitleDueAt = nil
		return tx.UpdateChat(ctx, c)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("title: drop job", "chat_id", chatID, "err", err)
	}
}

// excerpt is at most n characters of s, cut at a word when possible.
func excerpt(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut := []rune(s)[:n]
	if i := strings.LastIndexFunc(string(cut), unicode.IsSpace); i > n/2 {
		return string(cut)[:i] + " …"
	}
	return string(cut) + "…"
}
