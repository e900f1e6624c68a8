// Package store keeps chats, messages and the outbox in MySQL (or MariaDB). It
// implements app.Store and the relay's outbox operations; driver errors become the app
// package's sentinels (1062 is a conflict, no rows is not found).
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/parley-chat/parley/db"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/chat/internal/app"
)

// MySQL error numbers the store handles.
const (
	errDupEntry        = 1062
	errLockWaitTimeout = 1205
	errDeadlock        = 1213
)

// txAttempts bounds the retries of a transaction that lost a deadlock.
const txAttempts = 4

// Store is the MySQL implementation of app.Store.
type Store struct {
	db   *sql.DB
	wake chan struct{}
	fts  ftsRules

	mu sync.Mutex
	// fresh are outbox rows committed by this process and not yet handed to the relay.
	fresh []OutboxRow
}

// maxFresh bounds the rows waiting in memory for the relay's direct publish; beyond it
// rows are left to its poll (they are in the outbox either way).
const maxFresh = 10000

// New returns a Store on db. It reads the server's full-text settings once, to know
// which search terms the full-text index can answer.
func New(ctx context.Context, db *sql.DB) (*Store, error) {
	fts, err := loadFTSRules(ctx, db)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, wake: make(chan struct{}, 1), fts: fts}, nil
}

// Wake receives a value after a transaction that wrote outbox rows commits, so the
// relay publishes them at once (TakeFresh) instead of at its next poll.
func (s *Store) Wake() <-chan struct{} { return s.wake }

// TakeFresh returns the outbox rows committed by this process since the last call, in
// commit order, for the relay to publish straight away: no claim transaction, no
// read of what it has just written. The rows stay in the outbox until MarkPublished,
// so one that is never published (the process stops, NATS is away) is taken by a
// relay's poll once it is older than the poll's grace.
func (s *Store) TakeFresh() []OutboxRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.fresh
	s.fresh = nil
	return rows
}

func (s *Store) committed(rows []OutboxRow) {
	s.mu.Lock()
	if len(s.fresh)+len(rows) <= maxFresh {
		s.fresh = append(s.fresh, rows...)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader holds the queries used both inside and outside transactions.
type reader struct{ q querier }

// InTx implements app.Store. A transaction that lost a deadlock or a lock wait is run
// again from the start (fn must not keep state across attempts).
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx app.Tx) error) error {
	var err error
	for range txAttempts {
		err = s.inTx(ctx, fn)
		if !retryable(err) {
			return err
		}
	}
	return err
}

func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx app.Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", mapErr(err))
	}
	t := &tx{reader: reader{q: sqlTx}}
	if err := fn(ctx, t); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	if len(t.events) > 0 {
		s.committed(t.events)
	}
	return nil
}

func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == errDeadlock || me.Number == errLockWaitTimeout)
}

// mapErr turns driver errors into app sentinels, keeping the original in the chain.
func mapErr(err error) error {
	var me *mysql.MySQLError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return app.ErrNotFound
	case errors.As(err, &me) && me.Number == errDupEntry:
		return fmt.Errorf("%w: %w", app.ErrConflict, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case db.Unreachable(err):
		return fmt.Errorf("%w: database: %w", app.ErrUnavailable, err)
	}
	return err
}

const chatCols = "id, user_id, title, title_provisional, title_due_at, title_attempts, model, system_prompt, created_at, updated_at"

type scanner interface{ Scan(dest ...any) error }

func scanChat(sc scanner) (app.Chat, error) {
	var c app.Chat
	dest, finish := chatFields(&c)
	if err := sc.Scan(dest...); err != nil {
		return app.Chat{}, mapErr(err)
	}
	finish()
	return c, nil
}

// chatFields returns the scan destinations of chatCols for c, and what to run after
// the scan.
func chatFields(c *app.Chat) (dest []any, finish func()) {
	var prompt sql.NullString
	var due sql.NullTime
	dest = []any{&c.ID, &c.UserID, &c.Title, &c.TitleProvisional, &due, &c.TitleAttempts, &c.Model, &prompt,
		&c.CreatedAt, &c.UpdatedAt}
	return dest, func() {
		c.SystemPrompt = prompt.String
		if due.Valid {
			t := due.Time.UTC()
			c.TitleDueAt = &t
		}
	}
}

const messageCols = "seq, id, chat_id, user_id, role, content, status, model, client_message_id, reply_to, " +
	"error_code, error_message, prompt_tokens, completion_tokens, created_at, finished_at, cancel_requested_at, attempt_id"

func scanMessage(sc scanner) (app.Message, error) {
	var m app.Message
	dest, finish := messageFields(&m)
	if err := sc.Scan(dest...); err != nil {
		return app.Message{}, mapErr(err)
	}
	finish()
	return m, nil
}

// messageFields returns the scan destinations of messageCols for m, and what to run
// after the scan.
func messageFields(m *app.Message) (dest []any, finish func()) {
	var clientID, replyTo, errCode, errMsg, attempt sql.NullString
	var prompt, completion sql.NullInt64
	var finished, cancelRequested sql.NullTime
	dest = []any{&m.Seq, &m.ID, &m.ChatID, &m.UserID, &m.Role, &m.Content, &m.Status, &m.Model,
		&clientID, &replyTo, &errCode, &errMsg, &prompt, &completion, &m.CreatedAt, &finished, &cancelRequested, &attempt}
	return dest, func() {
		m.ClientMessageID, m.ReplyTo, m.AttemptID = clientID.String, replyTo.String, attempt.String
		m.ErrorCode, m.ErrorMessage = errCode.String, errMsg.String
		if prompt.Valid || completion.Valid {
			m.Usage = &events.Usage{PromptTokens: int(prompt.Int64), CompletionTokens: int(completion.Int64)}
		}
		if finished.Valid {
			t := finished.Time.UTC()
			m.FinishedAt = &t
		}
		if cancelRequested.Valid {
			t := cancelRequested.Time.UTC()
			m.CancelRequestedAt = &t
		}
		m.CreatedAt = m.CreatedAt.UTC()
	}
}

// lockChatMessage locks the chat, then the message, in one statement: both are found
// by unique keys, and STRAIGHT_JOIN reads (and locks) them in that order, the order
// every transaction takes its locks in.
var lockChatMessage = "SELECT " + prefixed("c.", chatCols) + ", " + prefixed("m.", messageCols) +
	" FROM chats c STRAIGHT_JOIN messages m ON m.chat_id = c.id WHERE c.id = ? AND m.id = ? FOR UPDATE"

func (r reader) chat(ctx context.Context, query string, args ...any) (app.Chat, error) {
	c, err := scanChat(r.q.QueryRowContext(ctx, query, args...))
	if err != nil {
		return app.Chat{}, fmt.Errorf("read chat: %w", err)
	}
	return c, nil
}

func (r reader) message(ctx context.Context, query string, args ...any) (app.Message, error) {
	m, err := scanMessage(r.q.QueryRowContext(ctx, query, args...))
	if err != nil {
		return app.Message{}, fmt.Errorf("read message: %w", err)
	}
	return m, nil
}

func (r reader) messages(ctx context.Context, query string, args ...any) ([]app.Message, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", mapErr(err))
	}
	defer rows.Close()
	var out []app.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("read message: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", mapErr(err))
	}
	return out, nil
}

func (r reader) ids(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query ids: %w", mapErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read id: %w", mapErr(err))
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ids: %w", mapErr(err))
	}
	return out, nil
}

// MessageByClientID implements app.Store and app.Tx.
func (r reader) MessageByClientID(ctx context.Context, userID, clientID string) (app.Message, error) {
	return r.message(ctx, "SELECT "+messageCols+" FROM messages WHERE user_id = ? AND client_message_id = ?", userID, clientID)
}

// AnswerTo implements app.Store and app.Tx.
func (r reader) AnswerTo(ctx context.Context, userMessageID string) (app.Message, error) {
	return r.message(ctx, "SELECT "+messageCols+" FROM messages WHERE reply_to = ? AND role = ? ORDER BY seq DESC LIMIT 1",
		userMessageID, events.RoleAssistant)
}

// CreateChat implements app.Store.
func (s *Store) CreateChat(ctx context.Context, c app.Chat) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO chats ("+chatCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.UserID, c.Title, c.TitleProvisional, c.TitleDueAt, c.TitleAttempts, c.Model, nullString(c.SystemPrompt),
		c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert chat: %w", mapErr(err))
	}
	return nil
}

// ChatByID implements app.Store.
func (s *Store) ChatByID(ctx context.Context, chatID string) (app.Chat, error) {
	return reader{s.db}.chat(ctx, "SELECT "+chatCols+" FROM chats WHERE id = ?", chatID)
}

// LatestChat implements app.Store.
func (s *Store) LatestChat(ctx context.Context, userID string) (app.Chat, error) {
	return reader{s.db}.chat(ctx, "SELECT "+chatCols+" FROM chats WHERE user_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1", userID)
}

// Messages implements app.Store.
func (s *Store) Messages(ctx context.Context, chatID string, beforeSeq int64, limit int) ([]app.Message, error) {
	if beforeSeq > 0 {
		return reader{s.db}.messages(ctx, "SELECT "+messageCols+" FROM messages WHERE chat_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
			chatID, beforeSeq, limit)
	}
	return reader{s.db}.messages(ctx, "SELECT "+messageCols+" FROM messages WHERE chat_id = ? ORDER BY seq DESC LIMIT ?", chatID, limit)
}

// History implements app.Store.
func (s *Store) History(ctx context.Context, chatID string, beforeSeq int64) ([]app.Message, error) {
	return reader{s.db}.messages(ctx, "SELECT "+messageCols+" FROM messages WHERE chat_id = ? AND seq < ? ORDER BY seq", chatID, beforeSeq)
}

// MessageByID implements app.Store.
func (s *Store) MessageByID(ctx context.Context, messageID string) (app.Message, error) {
	return reader{s.db}.message(ctx, "SELECT "+messageCols+" FROM messages WHERE id = ?", messageID)
}

// StartPending implements app.Store: one UPDATE, no transaction.
func (s *Store) StartPending(ctx context.Context, messageID, attemptID string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE messages SET status = ?, attempt_id = ?
		WHERE id = ? AND role = ? AND status = ? AND cancel_requested_at IS NULL`,
		events.StatusStreaming, nullString(attemptID), messageID, events.RoleAssistant, events.StatusPending)
	if err != nil {
		return false, fmt.Errorf("start answer: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("start answer: %w", err)
	}
	return n == 1, nil
}

// Thread implements app.Store: one query for the chat, the message and the chat's
// messages before it (the chat's columns come with every row).
func (s *Store) Thread(ctx context.Context, messageID string) (app.Chat, []app.Message, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+prefixed("c.", chatCols)+", "+prefixed("m.", messageCols)+`
		FROM messages m JOIN chats c ON c.id = m.chat_id
		WHERE m.chat_id = (SELECT chat_id FROM messages WHERE id = ?) AND m.seq <= (SELECT seq FROM messages WHERE id = ?)
		ORDER BY m.seq`, messageID, messageID)
	if err != nil {
		return app.Chat{}, nil, fmt.Errorf("query thread: %w", mapErr(err))
	}
	defer rows.Close()
	var c app.Chat
	var ms []app.Message
	for rows.Next() {
		var m app.Message
		cdest, cfinish := chatFields(&c)
		mdest, mfinish := messageFields(&m)
		if err := rows.Scan(append(cdest, mdest...)...); err != nil {
			return app.Chat{}, nil, fmt.Errorf("read thread: %w", mapErr(err))
		}
		cfinish()
		mfinish()
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return app.Chat{}, nil, fmt.Errorf("read thread: %w", mapErr(err))
	}
	if len(ms) == 0 || ms[len(ms)-1].ID != messageID {
		return app.Chat{}, nil, app.ErrNotFound
	}
	return c, ms, nil
}

// MessageByClientID implements app.Store.
func (s *Store) MessageByClientID(ctx context.Context, userID, clientID string) (app.Message, error) {
	return reader{s.db}.MessageByClientID(ctx, userID, clientID)
}

// AnswerTo implements app.Store.
func (s *Store) AnswerTo(ctx context.Context, userMessageID string) (app.Message, error) {
	return reader{s.db}.AnswerTo(ctx, userMessageID)
}

// Abandoned implements app.Store.
func (s *Store) Abandoned(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return reader{s.db}.ids(ctx, "SELECT id FROM messages WHERE status IN (?, ?) AND created_at < ? ORDER BY created_at LIMIT ?",
		events.StatusPending, events.StatusStreaming, before, limit)
}

// tx implements app.Tx on one *sql.Tx.
type tx struct {
	reader
	// events are the outbox rows the transaction wrote.
	events []OutboxRow
}

// LockChat implements app.Tx.
func (t *tx) LockChat(ctx context.Context, chatID string) (app.Chat, error) {
	return t.chat(ctx, "SELECT "+chatCols+" FROM chats WHERE id = ? FOR UPDATE", chatID)
}

// LockMessage implements app.Tx: chat first, then message.
func (t *tx) LockMessage(ctx context.Context, messageID string) (app.Message, app.Chat, error) {
	var chatID string
	if err := t.q.QueryRowContext(ctx, "SELECT chat_id FROM messages WHERE id = ?", messageID).Scan(&chatID); err != nil {
		return app.Message{}, app.Chat{}, fmt.Errorf("find message: %w", mapErr(err))
	}
	return t.LockMessageIn(ctx, chatID, messageID)
}

// LockMessageIn implements app.Tx: one statement locks the chat, then the message.
func (t *tx) LockMessageIn(ctx context.Context, chatID, messageID string) (app.Message, app.Chat, error) {
	var c app.Chat
	var m app.Message
	cdest, cfinish := chatFields(&c)
	mdest, mfinish := messageFields(&m)
	if err := t.q.QueryRowContext(ctx, lockChatMessage, chatID, messageID).Scan(append(cdest, mdest...)...); err != nil {
		return app.Message{}, app.Chat{}, fmt.Errorf("lock chat and message: %w", mapErr(err))
	}
	cfinish()
	mfinish()
	return m, c, nil
}

// LastMessage implements app.Tx.
func (t *tx) LastMessage(ctx context.Context, chatID string) (app.Message, error) {
	return t.message(ctx, "SELECT "+messageCols+" FROM messages WHERE chat_id = ? ORDER BY seq DESC LIMIT 1", chatID)
}

// RunningAnswers implements app.Tx.
func (t *tx) RunningAnswers(ctx context.Context, chatID string) ([]string, error) {
	return t.ids(ctx, "SELECT id FROM messages WHERE chat_id = ? AND status IN (?, ?)",
		chatID, events.StatusPending, events.StatusStreaming)
}

// ChatActivity implements app.Tx.
func (t *tx) ChatActivity(ctx context.Context, chatID string) (hasMessages, running bool, err error) {
	err = t.q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = ?),
		EXISTS (SELECT 1 FROM messages WHERE chat_id = ? AND status IN (?, ?))`,
		chatID, chatID, events.StatusPending, events.StatusStreaming).Scan(&hasMessages, &running)
	if err != nil {
		return false, false, fmt.Errorf("read chat activity: %w", mapErr(err))
	}
	return hasMessages, running, nil
}

// HasMessages implements app.Tx.
func (t *tx) HasMessages(ctx context.Context, chatID string) (bool, error) {
	var one int
	err := t.q.QueryRowContext(ctx, "SELECT 1 FROM messages WHERE chat_id = ? LIMIT 1", chatID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for messages: %w", mapErr(err))
	}
	return true, nil
}

const insertMessageCols = `INSERT INTO messages (id, chat_id, user_id, role, content, status, model,
	client_message_id, reply_to, error_code, error_message, prompt_tokens, completion_tokens, created_at, finished_at)
	VALUES `

func insertMessageArgs(args []any, m *app.Message) []any {
	prompt, completion := usageArgs(m.Usage)
	return append(args, m.ID, m.ChatID, m.UserID, m.Role, m.Content, m.Status, m.Model, nullString(m.ClientMessageID),
		nullString(m.ReplyTo), nullString(m.ErrorCode), nullString(m.ErrorMessage), prompt, completion,
		m.CreatedAt, m.FinishedAt)
}

// InsertMessage implements app.Tx.
func (t *tx) InsertMessage(ctx context.Context, m *app.Message) error {
	res, err := t.q.ExecContext(ctx, insertMessageCols+"("+placeholders(15)+")", insertMessageArgs(nil, m)...)
	if err != nil {
		return fmt.Errorf("insert message: %w", mapErr(err))
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("read message seq: %w", err)
	}
	m.Seq = seq
	return nil
}

// InsertMessages implements app.Tx: one multi-row INSERT.
func (t *tx) InsertMessages(ctx context.Context, ms ...*app.Message) error {
	if len(ms) == 0 {
		return nil
	}
	var args []any
	rows := make([]string, len(ms))
	for i, m := range ms {
		args = insertMessageArgs(args, m)
		rows[i] = "(" + placeholders(15) + ")"
	}
	if _, err := t.q.ExecContext(ctx, insertMessageCols+strings.Join(rows, ", "), args...); err != nil {
		return fmt.Errorf("insert messages: %w", mapErr(err))
	}
	return nil
}

// UpdateMessage implements app.Tx: it stores the mutable state of a message.
func (t *tx) UpdateMessage(ctx context.Context, m app.Message) error {
	prompt, completion := usageArgs(m.Usage)
	_, err := t.q.ExecContext(ctx, `UPDATE messages SET status = ?, content = ?, model = ?, error_code = ?,
		error_message = ?, prompt_tokens = ?, completion_tokens = ?, finished_at = ?, cancel_requested_at = ?,
		attempt_id = ? WHERE id = ?`,
		m.Status, m.Content, m.Model, nullString(m.ErrorCode), nullString(m.ErrorMessage), prompt, completion,
		m.FinishedAt, m.CancelRequestedAt, nullString(m.AttemptID), m.ID)
	if err != nil {
		return fmt.Errorf("update message: %w", mapErr(err))
	}
	return nil
}

// DeleteMessage implements app.Tx.
func (t *tx) DeleteMessage(ctx context.Context, messageID string) error {
	if _, err := t.q.ExecContext(ctx, "DELETE FROM messages WHERE id = ?", messageID); err != nil {
		return fmt.Errorf("delete message: %w", mapErr(err))
	}
	return nil
}

// UpdateChat implements app.Tx.
func (t *tx) UpdateChat(ctx context.Context, c app.Chat) error {
	_, err := t.q.ExecContext(ctx, `UPDATE chats SET title = ?, title_provisional = ?, title_due_at = ?, title_attempts = ?,
		model = ?, system_prompt = ?, updated_at = ? WHERE id = ?`, c.Title, c.TitleProvisional, c.TitleDueAt,
		c.TitleAttempts, c.Model, nullString(c.SystemPrompt), c.UpdatedAt, c.ID)
	if err != nil {
		return fmt.Errorf("update chat: %w", mapErr(err))
	}
	return nil
}

// DeleteChat implements app.Tx.
func (t *tx) DeleteChat(ctx context.Context, chatID string) error {
	if _, err := t.q.ExecContext(ctx, "DELETE FROM messages WHERE chat_id = ?", chatID); err != nil {
		return fmt.Errorf("delete messages of chat: %w", mapErr(err))
	}
	if _, err := t.q.ExecContext(ctx, "DELETE FROM chats WHERE id = ?", chatID); err != nil {
		return fmt.Errorf("delete chat: %w", mapErr(err))
	}
	return nil
}

// AddEvent implements app.Tx.
func (t *tx) AddEvent(ctx context.Context, ev events.Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if _, err := t.q.ExecContext(ctx, "INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, ?, ?, ?)",
		ev.ID, ev.Type, payload, ev.Time); err != nil {
		return fmt.Errorf("insert outbox row: %w", mapErr(err))
	}
	t.events = append(t.events, OutboxRow{ID: ev.ID, Subject: ev.Type, Payload: payload})
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func usageArgs(u *events.Usage) (sql.NullInt64, sql.NullInt64) {
	if u == nil {
		return sql.NullInt64{}, sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(u.PromptTokens), Valid: true}, sql.NullInt64{Int64: int64(u.CompletionTokens), Valid: true}
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

var (
	_ app.Store = (*Store)(nil)
	_ app.Tx    = (*tx)(nil)
)
