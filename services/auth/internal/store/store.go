// Package store keeps the auth service's data in MySQL/MariaDB: users, sessions,
// refresh tokens (SHA-256 hashes only), login throttle state and signing keys. It
// implements app.Store and maps driver errors to app's sentinel errors.
package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/services/auth/internal/app"
)

// Store implements app.Store on a *sql.DB.
type Store struct {
	db *sql.DB
}

// New returns a Store using db.
func New(db *sql.DB) *Store { return &Store{db: db} }

var _ app.Store = (*Store)(nil)

const errDuplicate = 1062

// epoch fills the time columns of a placeholder throttle row.
var epoch = time.Unix(0, 0).UTC()

// dupKey maps a duplicate-key error on users to app's error for the index it hit.
func dupKey(err error) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != errDuplicate {
		return nil
	}
	switch {
	case strings.Contains(me.Message, "uq_users_username"):
		return app.ErrUsernameTaken
	case strings.Contains(me.Message, "uq_users_email"):
		return app.ErrEmailTaken
	}
	return nil
}

// mapErr marks errors that mean the database cannot be reached (connection refused or
// lost, network timeouts, the request's deadline passing while waiting for it) as
// app.ErrUnavailable, keeping the original in the chain; others are returned as is.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded), db.Unreachable(err):
		return fmt.Errorf("%w: database: %w", app.ErrUnavailable, err)
	}
	return err
}

// UsersTaken reports whether username or email is used; the column collation
// (utf8mb4_unicode_ci) makes the comparison case-insensitive.
func (s *Store) UsersTaken(ctx context.Context, username, email string) (bool, bool, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT username = ?, email = ? FROM users WHERE username = ? OR email = ? LIMIT 2`,
		username, email, username, email)
	if err != nil {
		return false, false, fmt.Errorf("query users: %w", mapErr(err))
	}
	defer rows.Close()
	var userTaken, emailTaken bool
	for rows.Next() {
		var u, e bool
		if err := rows.Scan(&u, &e); err != nil {
			return false, false, fmt.Errorf("scan users: %w", mapErr(err))
		}
		userTaken = userTaken || u
		emailTaken = emailTaken || e
	}
	if err := rows.Err(); err != nil {
		return false, false, fmt.Errorf("read users: %w", mapErr(err))
	}
	return userTaken, emailTaken, nil
}

// CreateUser inserts u.
func (s *Store) CreateUser(ctx context.Context, u app.User, passwordHash string) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO users (id, username, email, firstname, lastname, password_hash, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.Email, u.Firstname, u.Lastname, passwordHash, u.CreatedAt)
	if err != nil {
		if de := dupKey(err); de != nil {
			return de
		}
		return fmt.Errorf("insert user: %w", mapErr(err))
	}
	return nil
}

const userColumns = `id, username, email, firstname, lastname, created_at`

func scanUser(row interface{ Scan(...any) error }, extra ...any) (app.User, error) {
	var u app.User
	dest := append([]any{&u.ID, &u.Username, &u.Email, &u.Firstname, &u.Lastname, &u.CreatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return app.User{}, app.ErrNotFound
		}
		return app.User{}, fmt.Errorf("scan user: %w", mapErr(err))
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// UserByLogin finds a user by email when login holds an '@' (usernames cannot), else
// by username, case-insensitively.
func (s *Store) UserByLogin(ctx context.Context, login string) (app.User, string, error) {
	col := "username"
	if strings.Contains(login, "@") {
		col = "email"
	}
	var hash string
	u, err := scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+`, password_hash FROM users WHERE `+col+` = ?`, login), &hash)
	if err != nil {
		return app.User{}, "", err
	}
	return u, hash, nil
}

// UserByID finds a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (app.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// UserInSession finds a user by id if sessionID is one of its sessions and not revoked.
func (s *Store) UserInSession(ctx context.Context, id, sessionID string) (app.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?
		AND EXISTS (SELECT 1 FROM sessions WHERE sessions.id = ? AND sessions.user_id = users.id AND sessions.revoked_at IS NULL)`,
		id, sessionID))
}

// UpdatePasswordHash replaces a user's password hash.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, passwordHash string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID); err != nil {
		return fmt.Errorf("update password hash: %w", mapErr(err))
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readThrottle(ctx context.Context, q querier, key []byte, lock bool) (app.ThrottleState, error) {
	query := `SELECT failures, window_start, window_failures, blocked_until, updated_at
		FROM login_throttle WHERE account_key = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	var t app.ThrottleState
	var blocked sql.NullTime
	err := q.QueryRowContext(ctx, query, key).Scan(&t.Failures, &t.WindowStart, &t.WindowFailures, &blocked, &t.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return app.ThrottleState{}, nil
	}
	if err != nil {
		return app.ThrottleState{}, fmt.Errorf("read login throttle: %w", mapErr(err))
	}
	if blocked.Valid {
		t.BlockedUntil = blocked.Time.UTC()
	}
	t.WindowStart, t.UpdatedAt = t.WindowStart.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

// LoginThrottle returns key's throttle state (zero when there is none).
func (s *Store) LoginThrottle(ctx context.Context, key []byte) (app.ThrottleState, error) {
	return readThrottle(ctx, s.db, key, false)
}

// UpdateLoginThrottle applies fn to key's state under a row lock.
func (s *Store) UpdateLoginThrottle(ctx context.Context, key []byte, fn func(app.ThrottleState) app.ThrottleState) (app.ThrottleState, error) {
	var out app.ThrottleState
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Make sure the row exists so that FOR UPDATE locks it even on a first failure.
		if _, err := tx.ExecContext(ctx,
			`INSERT IGNORE INTO login_throttle (account_key, failures, window_start, window_failures, updated_at)
			 VALUES (?, 0, ?, 0, ?)`, key, epoch, epoch); err != nil {
			return fmt.Errorf("insert login throttle: %w", mapErr(err))
		}
		cur, err := readThrottle(ctx, tx, key, true)
		if err != nil {
			return err
		}
		if cur.Failures == 0 && cur.WindowFailures == 0 {
			cur = app.ThrottleState{} // the placeholder row just inserted
		}
		out = fn(cur)
		var blocked any
		if !out.BlockedUntil.IsZero() {
			blocked = out.BlockedUntil
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE login_throttle SET failures = ?, window_start = ?, window_failures = ?, blocked_until = ?, updated_at = ?
			 WHERE account_key = ?`,
			out.Failures, out.WindowStart, out.WindowFailures, blocked, out.UpdatedAt, key); err != nil {
			return fmt.Errorf("update login throttle: %w", mapErr(err))
		}
		return nil
	})
	return out, err
}

// ClearLoginThrottle forgets key's failures.
func (s *Store) ClearLoginThrottle(ctx context.Context, key []byte) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_throttle WHERE account_key = ?`, key); err != nil {
		return fmt.Errorf("delete login throttle: %w", mapErr(err))
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", mapErr(err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

// CreateSession stores a session with its first refresh token.
func (s *Store) CreateSession(ctx context.Context, sess app.Session, refreshHash []byte) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, client_ip, refresh_secret)
			 VALUES (?, ?, ?, ?, ?, ?, ?)`,
			sess.ID, sess.UserID, sess.CreatedAt, sess.LastUsedAt, sess.ExpiresAt, sess.ClientIP, sess.RefreshSecret); err != nil {
			return fmt.Errorf("insert session: %w", mapErr(err))
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)`,
			refreshHash, sess.ID, sess.CreatedAt); err != nil {
			return fmt.Errorf("insert refresh token: %w", mapErr(err))
		}
		return nil
	})
}

// RefreshToken reads a refresh token and its session.
func (s *Store) RefreshToken(ctx context.Context, tokenHash []byte) (app.RefreshRecord, error) {
	var r app.RefreshRecord
	var used, revoked sql.NullTime
	err := s.db.QueryRowContext(ctx,
		`SELECT t.token_hash, t.used_at, t.successor_hash,
		        s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.client_ip, s.refresh_secret
		 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
		 WHERE t.token_hash = ?`, tokenHash).
		Scan(&r.TokenHash, &used, &r.SuccessorHash,
			&r.Session.ID, &r.Session.UserID, &r.Session.CreatedAt, &r.Session.LastUsedAt, &r.Session.ExpiresAt,
			&revoked, &r.Session.ClientIP, &r.Session.RefreshSecret)
	if errors.Is(err, sql.ErrNoRows) {
		return app.RefreshRecord{}, app.ErrNotFound
	}
	if err != nil {
		return app.RefreshRecord{}, fmt.Errorf("read refresh token: %w", mapErr(err))
	}
	if used.Valid {
		t := used.Time.UTC()
		r.UsedAt = &t
	}
	if revoked.Valid {
		t := revoked.Time.UTC()
		r.Session.RevokedAt = &t
	}
	r.Session.CreatedAt = r.Session.CreatedAt.UTC()
	r.Session.LastUsedAt = r.Session.LastUsedAt.UTC()
	r.Session.ExpiresAt = r.Session.ExpiresAt.UTC()
	return r, nil
}

// RotateRefresh marks oldHash used (one conditional UPDATE: used_at IS NULL) with its
// successor, inserts the successor and touches the session, in one transaction. The
// session row is updated first, so a concurrent revocation either happens before (the
// rotation fails) or waits for it.
func (s *Store) RotateRefresh(ctx context.Context, sessionID string, oldHash, newHash []byte, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE sessions SET last_used_at = ? WHERE id = ? AND revoked_at IS NULL`, now, sessionID)
		if err != nil {
			return fmt.Errorf("touch session: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("touch session: %w", mapErr(err))
		} else if n == 0 {
			return app.ErrSessionEnded
		}
		res, err = tx.ExecContext(ctx,
			`UPDATE refresh_tokens SET used_at = ?, successor_hash = ? WHERE token_hash = ? AND used_at IS NULL`,
			now, newHash, oldHash)
		if err != nil {
			return fmt.Errorf("mark refresh token used: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("mark refresh token used: %w", mapErr(err))
		} else if n == 0 {
			return app.ErrRefreshUsed
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)`,
			newHash, sessionID, now); err != nil {
			return fmt.Errorf("insert refresh token: %w", mapErr(err))
		}
		return nil
	})
}

// TouchSession records a use of a session.
func (s *Store) TouchSession(ctx context.Context, sessionID string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx,
		`UPDATE sessions SET last_used_at = GREATEST(last_used_at, ?) WHERE id = ?`, now, sessionID); err != nil {
		return fmt.Errorf("touch session: %w", mapErr(err))
	}
	return nil
}

// RevokeSession revokes one session of userID; revoking a revoked session is fine.
func (s *Store) RevokeSession(ctx context.Context, userID, sessionID string, now time.Time) error {
	var exists bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx,
			`SELECT 1 FROM sessions WHERE id = ? AND user_id = ? FOR UPDATE`, sessionID, userID).Scan(&exists); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return app.ErrNotFound
			}
			return fmt.Errorf("find session: %w", mapErr(err))
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, now, sessionID); err != nil {
			return fmt.Errorf("revoke session: %w", mapErr(err))
		}
		return nil
	})
	return err
}

// RevokeUserSessions revokes every live session of userID and stamps the user's
// tokens_not_before.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`UPDATE users SET tokens_not_before = ? WHERE id = ?`, now, userID); err != nil {
			return fmt.Errorf("set tokens_not_before: %w", mapErr(err))
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, now, userID); err != nil {
			return fmt.Errorf("revoke sessions: %w", mapErr(err))
		}
		return nil
	})
}

// WithKeyLock runs fn holding a named lock (GET_LOCK) scoped to this database, on one
// pooled connection for the whole time.
func (s *Store) WithKeyLock(ctx context.Context, fn func(context.Context) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", mapErr(err))
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx,
		`SELECT GET_LOCK(CONCAT('parley_auth_keys.', DATABASE()), 30)`).Scan(&got); err != nil {
		return fmt.Errorf("take signing-key lock: %w", mapErr(err))
	}
	if !got.Valid || got.Int64 != 1 {
		return errors.New("take signing-key lock: timed out")
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx has ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(rctx, `DO RELEASE_LOCK(CONCAT('parley_auth_keys.', DATABASE()))`)
	}()
	return fn(ctx)
}

func scanKey(row interface{ Scan(...any) error }) (app.SigningKey, error) {
	var k app.SigningKey
	var priv []byte
	var retired sql.NullTime
	if err := row.Scan(&k.KID, &priv, &k.CreatedAt, &retired); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return app.SigningKey{}, app.ErrNotFound
		}
		return app.SigningKey{}, fmt.Errorf("scan signing key: %w", mapErr(err))
	}
	if len(priv) != ed25519.PrivateKeySize {
		return app.SigningKey{}, fmt.Errorf("signing key %s has %d bytes", k.KID, len(priv))
	}
	k.Private = ed25519.PrivateKey(priv)
	k.CreatedAt = k.CreatedAt.UTC()
	if retired.Valid {
		t := retired.Time.UTC()
		k.RetiredAt = &t
	}
	return k, nil
}

// CurrentKey returns the newest key not retired.
func (s *Store) CurrentKey(ctx context.Context) (app.SigningKey, error) {
	return scanKey(s.db.QueryRowContext(ctx,
		`SELECT kid, private_key, created_at, retired_at FROM signing_keys
		 WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1`))
}

// AddKey stores k and retires every other live key at k.CreatedAt.
func (s *Store) AddKey(ctx context.Context, k app.SigningKey) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO signing_keys (kid, private_key, created_at) VALUES (?, ?, ?)`,
			k.KID, []byte(k.Private), k.CreatedAt); err != nil {
			return fmt.Errorf("insert signing key: %w", mapErr(err))
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE signing_keys SET retired_at = ? WHERE kid <> ? AND retired_at IS NULL`, k.CreatedAt, k.KID); err != nil {
			return fmt.Errorf("retire signing keys: %w", mapErr(err))
		}
		return nil
	})
}

// VerificationKeys lists live keys and keys retired after retiredAfter, newest first.
func (s *Store) VerificationKeys(ctx context.Context, retiredAfter time.Time) ([]app.SigningKey, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT kid, private_key, created_at, retired_at FROM signing_keys
		 WHERE retired_at IS NULL OR retired_at > ? ORDER BY created_at DESC, kid DESC`, retiredAfter)
	if err != nil {
		return nil, fmt.Errorf("query signing keys: %w", mapErr(err))
	}
	defer rows.Close()
	var keys []app.SigningKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signing keys: %w", mapErr(err))
	}
	return keys, nil
}

// DeleteExpired removes, in bounded batches, sessions that ended before before (with
// their refresh tokens), throttle rows untouched since before, and keys retired
// before before.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) error {
	for {
		res, err := s.db.ExecContext(ctx,
			`DELETE t FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
			 WHERE s.expires_at < ? OR s.revoked_at < ?`, before, before)
		if err != nil {
			return fmt.Errorf("delete refresh tokens: %w", mapErr(err))
		}
		if _, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete refresh tokens: %w", mapErr(err))
		}
		res, err = s.db.ExecContext(ctx,
			`DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ? LIMIT 1000`, before, before)
		if err != nil {
			return fmt.Errorf("delete sessions: %w", mapErr(err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete sessions: %w", mapErr(err))
		}
		if n < 1000 {
			break
		}
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM login_throttle WHERE updated_at < ? LIMIT 10000`, before); err != nil {
		return fmt.Errorf("delete throttle rows: %w", mapErr(err))
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE retired_at < ?`, before); err != nil {
		return fmt.Errorf("delete retired keys: %w", mapErr(err))
	}
	return nil
}
