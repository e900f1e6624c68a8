package store

import (
	"context"
	"fmt"
	"time"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat/internal/app"
)

// ClaimTitleJobs implements app.TitleStore: a short transaction with SELECT ... FOR
// UPDATE SKIP LOCKED, so titlers on several replicas take disjoint chats.
func (s *Store) ClaimTitleJobs(ctx context.Context, now, leaseUntil time.Time, limit int) ([]app.TitleJob, error) {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin title claim: %w", mapErr(err))
	}
	defer func() { _ = sqlTx.Rollback() }()
	rows, err := sqlTx.QueryContext(ctx, `SELECT id, title_attempts FROM chats WHERE title_due_at <= ?
		ORDER BY title_due_at LIMIT ? FOR UPDATE SKIP LOCKED`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim title jobs: %w", mapErr(err))
	}
	var jobs []app.TitleJob
	for rows.Next() {
		var j app.TitleJob
		if err := rows.Scan(&j.ChatID, &j.Attempt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read title job: %w", mapErr(err))
		}
		j.Attempt++
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read title jobs: %w", mapErr(err))
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	args := []any{leaseUntil}
	for _, j := range jobs {
		args = append(args, j.ChatID)
	}
	if _, err := sqlTx.ExecContext(ctx, "UPDATE chats SET title_due_at = ?, title_attempts = LEAST(title_attempts + 1, 255) WHERE id IN ("+
		placeholders(len(jobs))+")", args...); err != nil {
		return nil, fmt.Errorf("lease title jobs: %w", mapErr(err))
	}
	if err := sqlTx.Commit(); err != nil {
		return nil, fmt.Errorf("commit title claim: %w", mapErr(err))
	}
	return jobs, nil
}

// FirstExchange implements app.TitleStore.
func (s *Store) FirstExchange(ctx context.Context, chatID string) (question, answer app.Message, err error) {
	r := reader{s.db}
	answer, err = r.message(ctx, "SELECT "+messageCols+" FROM messages WHERE chat_id = ? AND role = ? AND status = ? ORDER BY seq LIMIT 1",
		chatID, events.RoleAssistant, events.StatusComplete)
	if err != nil {
		return app.Message{}, app.Message{}, err
	}
	if answer.ReplyTo != "" {
		question, err = r.message(ctx, "SELECT "+messageCols+" FROM messages WHERE id = ? AND chat_id = ?", answer.ReplyTo, chatID)
	} else {
		question, err = r.message(ctx, "SELECT "+messageCols+" FROM messages WHERE chat_id = ? AND role = ? AND seq < ? ORDER BY seq DESC LIMIT 1",
			chatID, events.RoleUser, answer.Seq)
	}
	if err != nil {
		return app.Message{}, app.Message{}, err
	}
	return question, answer, nil
}
