-- +goose Up
CREATE TABLE users (
  id            CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  username      VARCHAR(32)  NOT NULL,
  email         VARCHAR(254) NOT NULL,
  firstname     VARCHAR(100) NOT NULL,
  lastname      VARCHAR(100) NOT NULL,
  password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- access tokens issued before this instant are refused ("log out everywhere").
  tokens_not_before DATETIME(6) NULL,
  created_at    DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_users_username (username),
  UNIQUE KEY uq_users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sessions (
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at   DATETIME(6) NOT NULL,
  last_used_at DATETIME(6) NOT NULL,
  -- absolute end of the session, whatever its use.
  expires_at   DATETIME(6) NOT NULL,
  revoked_at   DATETIME(6) NULL,
  client_ip    VARCHAR(64) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY ix_sessions_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Refresh tokens are stored as SHA-256 hashes; a used token points at its successor so a
-- lost response can be retried within a short grace window, and a replay after that ends
-- the whole session.
CREATE TABLE refresh_tokens (
  token_hash     BINARY(32) NOT NULL,
  session_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at     DATETIME(6) NOT NULL,
  used_at        DATETIME(6) NULL,
  successor_hash BINARY(32) NULL,
  PRIMARY KEY (token_hash),
  KEY ix_refresh_session (session_id)
) ENGINE=InnoDB;

-- Ed25519 signing keys. Only the auth service's database user can read this table.
CREATE TABLE signing_keys (
  kid         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  private_key VARBINARY(64) NOT NULL,
  created_at  DATETIME(6) NOT NULL,
  retired_at  DATETIME(6) NULL,
  PRIMARY KEY (kid)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
