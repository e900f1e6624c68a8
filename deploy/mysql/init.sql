-- Run once by the mysql:8.4 image on an empty data volume. One schema, one user per
-- service; each service's user is granted only its own tables (and its migration
-- bookkeeping tables). The schema owner user applies nothing at runtime: each service
-- migrates its own tables, so each user also needs CREATE/ALTER/INDEX on its own names.
CREATE DATABASE IF NOT EXISTS parley CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'auth'@'%' IDENTIFIED BY 'auth-dev-password';
CREATE USER IF NOT EXISTS 'chat'@'%' IDENTIFIED BY 'chat-dev-password';

-- MySQL grants on tables that do not exist yet are allowed at table level.
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.users TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.sessions TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.refresh_tokens TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.signing_keys TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.login_throttle TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.goose_version_auth TO 'auth'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.goose_lock_auth TO 'auth'@'%';

GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.chats TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.messages TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.outbox TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.goose_version_chat TO 'chat'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON parley.goose_lock_chat TO 'chat'@'%';
FLUSH PRIVILEGES;
