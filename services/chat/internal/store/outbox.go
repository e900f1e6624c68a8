package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// OutboxRow is one event waiting to be published.
type OutboxRow struct {
	ID      string
	Subject string
	Payload []byte
}

// RelayOutbox takes up to limit unpublished rows that no other relay holds, hands them
// to publish and records the outcome, all in one transaction: rows publish acknowledged
// get published_at, the others are handed back for another attempt from now+retryDelay.
// It returns how many rows it took (0: nothing to publish).
//
// The rows are locked with SELECT ... FOR UPDATE SKIP LOCKED, so several replicas take
// disjoint batches; a relay that dies mid-batch leaves nothing behind (its transaction
// rolls back and the rows are taken again; the stream's duplicate window absorbs a
// second publish of a row whose PubAck came back but whose mark was lost). The
// transaction is READ COMMITTED: the locking read takes no gap locks, so the sends and
// completions inserting new rows never wait for a batch being published. One
// transaction per batch (one commit, one fsync) instead of a lease and a mark.
//
// The transaction does not end with ctx: rows that were acknowledged are marked even
// while the service stops (publish should watch ctx itself).
func (s *Store) RelayOutbox(ctx context.Context, limit int, retryDelay time.Duration, committedBefore time.Time,
	publish func([]OutboxRow) (published, failed []string)) (int, error) {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outboxTxTimeout)
	defer cancel()
	sqlTx, err := s.db.BeginTx(tctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("begin outbox batch: %w", mapErr(err))
	}
	defer func() { _ = sqlTx.Rollback() }()
	rows, err := sqlTx.QueryContext(tctx, `SELECT id, subject, payload FROM outbox
		WHERE published_at IS NULL AND (locked_until IS NULL OR locked_until < ?) AND created_at < ?
		ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, time.Now().UTC(), committedBefore.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("claim outbox rows: %w", mapErr(err))
	}
	var batch []OutboxRow
	for rows.Next() {
		var r OutboxRow
		if err := rows.Scan(&r.ID, &r.Subject, &r.Payload); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read outbox row: %w", mapErr(err))
		}
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read outbox rows: %w", mapErr(err))
	}
	if len(batch) == 0 {
		return 0, nil
	}
	published, failed := publish(batch)
	now := time.Now().UTC()
	if err := updateOutbox(tctx, sqlTx, "published_at = ?, locked_until = NULL", now, published); err != nil {
		return 0, err
	}
	if err := updateOutbox(tctx, sqlTx, "locked_until = ?", now.Add(retryDelay), failed); err != nil {
		return 0, err
	}
	if err := sqlTx.Commit(); err != nil {
		return 0, fmt.Errorf("commit outbox batch: %w", mapErr(err))
	}
	return len(batch), nil
}

// MarkPublished records rows published straight after their commit (TakeFresh), in
// one statement. A row a poll published meanwhile keeps its first time.
func (s *Store) MarkPublished(ctx context.Context, ids []string) error {
	return updateOutbox(ctx, s.db, "published_at = ?", time.Now().UTC(), ids)
}

// outboxTxTimeout bounds a relay transaction, publishing included.
const outboxTxTimeout = 15 * time.Second

func updateOutbox(ctx context.Context, q querier, set string, at time.Time, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{at}
	for _, id := range ids {
		args = append(args, id)
	}
	// published_at IS NULL: a row is marked (and counted) once, whoever published it.
	if _, err := q.ExecContext(ctx, "UPDATE outbox SET "+set+", attempts = attempts + 1 WHERE published_at IS NULL AND id IN ("+
		placeholders(len(ids))+")", args...); err != nil {
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

// CheckBinlog fails when the server writes a statement-based binary log: InnoDB then
// refuses every write made at READ COMMITTED (error 1665), which is the isolation level
// of the outbox relay's transaction (RelayOutbox), so no event would ever be published
// and no answer generated. ROW (MySQL's default) and MIXED (MariaDB's) are fine.
func CheckBinlog(ctx context.Context, db *sql.DB) error {
	var logBin int
	var format string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format").Scan(&logBin, &format); err != nil {
		return fmt.Errorf("read the binary log settings: %w", err)
	}
	if logBin == 1 && strings.EqualFold(format, "STATEMENT") {
		return errors.New("the MySQL server writes a statement-based binary log (binlog_format=STATEMENT), " +
			"with which InnoDB refuses the READ COMMITTED writes of chat's outbox: set binlog_format=ROW or MIXED " +
			"(docs/deploy.md, MySQL settings)")
	}
	return nil
}
