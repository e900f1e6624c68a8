-- +goose Up
-- The attempt (an id the inference worker chose) that last started writing an answer.
-- A completion naming another attempt is refused: when a worker was presumed dead and
-- another took the answer over, only the newer attempt's text is stored.
ALTER TABLE messages ADD COLUMN attempt_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL;

-- +goose Down
ALTER TABLE messages DROP COLUMN attempt_id;
