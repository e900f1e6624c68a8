-- +goose Up
-- Set when a person cancels an answer a worker is writing. The worker normally hears the
-- cancel at once; if it died meanwhile, the worker that takes the answer over finds this
-- mark at start and the answer is stored cancelled instead of written again.
ALTER TABLE messages ADD COLUMN cancel_requested_at DATETIME(6) NULL;

-- +goose Down
ALTER TABLE messages DROP COLUMN cancel_requested_at;
