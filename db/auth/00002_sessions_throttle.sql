-- +goose Up
-- A per-session secret from which each refresh token's successor is derived
-- (HMAC-SHA256(secret, token)): a retry of an already used token inside the grace window
-- gets the very same successor back, while only hashes of tokens are ever stored.
ALTER TABLE sessions ADD COLUMN refresh_secret BINARY(32) NULL;
ALTER TABLE sessions ADD KEY ix_sessions_expires (expires_at);

-- Failed-login bookkeeping per account (or per unknown login name), shared by every
-- auth replica. account_key is SHA-256 of "user:<id>" or "name:<lowercased login>".
CREATE TABLE login_throttle (
  account_key     BINARY(32)  NOT NULL,
  -- consecutive failures since the last success (forgotten after an hour without one).
  failures        INT         NOT NULL,
  -- start of the current one-hour window and the failures counted in it (hard cap).
  window_start    DATETIME(6) NOT NULL,
  window_failures INT         NOT NULL,
  -- no password is checked for this account before this instant.
  blocked_until   DATETIME(6) NULL,
  updated_at      DATETIME(6) NOT NULL,
  PRIMARY KEY (account_key),
  KEY ix_login_throttle_updated (updated_at)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE login_throttle;
ALTER TABLE sessions DROP KEY ix_sessions_expires;
ALTER TABLE sessions DROP COLUMN refresh_secret;
