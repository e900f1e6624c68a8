-- +goose Up
CREATE TABLE chats (
  id                CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- a value owned by the auth service, not a foreign key.
  user_id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  title             VARCHAR(200) NOT NULL,
  -- true until a title was derived from the conversation or set by the user.
  title_provisional BOOLEAN NOT NULL DEFAULT TRUE,
  model             VARCHAR(200) NOT NULL,
  system_prompt     TEXT NULL,
  created_at        DATETIME(6) NOT NULL,
  -- last activity: newest-first listing and "continue last chat" sort on it.
  updated_at        DATETIME(6) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_chats_user_activity (user_id, updated_at, id),
  FULLTEXT KEY ft_chats_title (title)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE messages (
  -- seq orders messages; id is the opaque public id.
  seq               BIGINT NOT NULL AUTO_INCREMENT,
  id                CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  chat_id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  role              VARCHAR(16) CHARACTER SET ascii NOT NULL,
  content           MEDIUMTEXT NOT NULL,
  status            VARCHAR(16) CHARACTER SET ascii NOT NULL,
  model             VARCHAR(200) NOT NULL DEFAULT '',
  client_message_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  -- for an answer: the user message it answers.
  reply_to          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  error_code        VARCHAR(64) NULL,
  error_message     VARCHAR(1000) NULL,
  prompt_tokens     INT NULL,
  completion_tokens INT NULL,
  created_at        DATETIME(6) NOT NULL,
  finished_at       DATETIME(6) NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY uq_messages_id (id),
  UNIQUE KEY uq_messages_client_id (user_id, client_message_id),
  KEY ix_messages_chat (chat_id, seq),
  -- "is an answer of this chat still running?" without scanning the whole chat.
  KEY ix_messages_chat_status (chat_id, status),
  KEY ix_messages_reply_to (reply_to),
  -- the reaper's scan for answers stuck in pending/streaming.
  KEY ix_messages_status (status, created_at),
  FULLTEXT KEY ft_messages_content (content)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Transactional outbox: written in the same transaction as the change it announces,
-- published to JetStream by the relay with Nats-Msg-Id = id.
CREATE TABLE outbox (
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  subject      VARCHAR(200) CHARACTER SET ascii NOT NULL,
  payload      MEDIUMBLOB NOT NULL,
  created_at   DATETIME(6) NOT NULL,
  published_at DATETIME(6) NULL,
  attempts     INT NOT NULL DEFAULT 0,
  -- a relay claims a batch by setting this lease (in a short transaction using
  -- SELECT ... FOR UPDATE SKIP LOCKED), publishes without holding a connection, then
  -- sets published_at. A relay that dies mid-batch leaves rows that the next one takes
  -- once the lease has passed.
  locked_until DATETIME(6) NULL,
  PRIMARY KEY (id),
  KEY ix_outbox_pending (published_at, created_at)
) ENGINE=InnoDB;

-- +goose Down
DROP TABLE outbox;
DROP TABLE messages;
DROP TABLE chats;
