-- +goose Up
-- A generated title is wanted when title_due_at is set: the titler takes such chats
-- once title_due_at has passed (the column doubles as its lease and retry time).
ALTER TABLE chats
  ADD COLUMN title_due_at DATETIME(6) NULL AFTER title_provisional,
  ADD COLUMN title_attempts TINYINT UNSIGNED NOT NULL DEFAULT 0 AFTER title_due_at,
  ADD KEY ix_chats_title_due (title_due_at);

-- +goose Down
ALTER TABLE chats
  DROP KEY ix_chats_title_due,
  DROP COLUMN title_attempts,
  DROP COLUMN title_due_at;
