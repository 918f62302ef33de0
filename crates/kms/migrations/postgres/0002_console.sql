-- 0002 (PostgreSQL): web console users (password hashes, never passwords) and sessions (keyed
-- by the SHA-256 of the session token, never the token itself), as SQLite migration 0005.
CREATE TABLE console_users (
    user_name     TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    creation_date BIGINT NOT NULL
);
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    principal  TEXT NOT NULL,
    created    BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen);
