package store

import (
	"context"
	"fmt"
	"time"
)

// OutboxRow is one event waiting to be published.
type OutboxRow struct {
	ID      string
	Subject string
	Payload []byte
}

// ClaimOutbox takes up to limit unpublished rows that no other relay holds, and leases
// them until now+lease. The claim is a short transaction using SELECT ... FOR UPDATE
// SKIP LOCKED, so several replicas take disjoint batches and no connection is held
// while the rows are published.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]OutboxRow, error) {
	now := time.Now().UTC()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin outbox claim: %w", mapErr(err))
	}
	defer func() { _ = sqlTx.Rollback() }()
	rows, err := sqlTx.QueryContext(ctx, `SELECT id, subject, payload FROM outbox
		WHERE published_at IS NULL AND (locked_until IS NULL OR locked_until < ?)
		ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", mapErr(err))
	}
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		if err := rows.Scan(&r.ID, &r.Subject, &r.Payload); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read outbox row: %w", mapErr(err))
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox rows: %w", mapErr(err))
	}
	if len(out) == 0 {
		return nil, nil
	}
	args := []any{now.Add(lease)}
	for _, r := range out {
		args = append(args, r.ID)
	}
	if _, err := sqlTx.ExecContext(ctx, "UPDATE outbox SET locked_until = ?, attempts = attempts + 1 WHERE id IN ("+
		placeholders(len(out))+")", args...); err != nil {
		return nil, fmt.Errorf("lease outbox rows: %w", mapErr(err))
	}
	if err := sqlTx.Commit(); err != nil {
		return nil, fmt.Errorf("commit outbox claim: %w", mapErr(err))
	}
	return out, nil
}

// MarkPublished records that JetStream acknowledged these rows.
func (s *Store) MarkPublished(ctx context.Context, ids []string, at time.Time) error {
	return s.updateOutbox(ctx, "published_at = ?, locked_until = NULL", at.UTC(), ids)
}

// ReleaseOutbox hands rows back for another attempt from retryAt on.
func (s *Store) ReleaseOutbox(ctx context.Context, ids []string, retryAt time.Time) error {
	return s.updateOutbox(ctx, "locked_until = ?", retryAt.UTC(), ids)
}

func (s *Store) updateOutbox(ctx context.Context, set string, at time.Time, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{at}
	for _, id := range ids {
		args = append(args, id)
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE outbox SET "+set+" WHERE id IN ("+placeholders(len(ids))+")", args...); err != nil {
		return fmt.Errorf("update outbox rows: %w", mapErr(err))
	}
	return nil
}

// PurgeOutbox deletes up to limit rows published before t and returns how many.
func (s *Store) PurgeOutbox(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ? LIMIT ?", before.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("purge outbox: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}
