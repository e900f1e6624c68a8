-- Run once by the mysql:8.4 image on an empty data volume (through init.sh, which puts
-- in the passwords from AUTH_DB_PASSWORD / CHAT_DB_PASSWORD). One schema, one user per
-- service; each service's user is granted only its own tables (and its migration
-- bookkeeping tables), nothing on other tables, schemas or the server. Each service
-- migrates its own tables, so its user also has CREATE/ALTER/INDEX on its own names,
-- but no DROP: no up-migration or runtime query drops anything.
-- tests/security applies this file (with its own names) and proves both.
CREATE DATABASE IF NOT EXISTS parley CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'auth'@'%' IDENTIFIED BY 'auth-dev-password';
CREATE USER IF NOT EXISTS 'chat'@'%' IDENTIFIED BY 'chat-dev-password';

-- MySQL grants on tables that do not exist yet are allowed at table level.
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.users TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.sessions TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.refresh_tokens TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.signing_keys TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.login_throttle TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.goose_version_auth TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.goose_lock_auth TO 'auth'@'%';

GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.chats TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.messages TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.outbox TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.goose_version_chat TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON parley.goose_lock_chat TO 'chat'@'%';
FLUSH PRIVILEGES;
