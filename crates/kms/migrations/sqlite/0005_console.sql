-- 0005: web console users (password hashes, never passwords) and sessions (keyed by the
-- SHA-256 of the session token, never the token itself).
CREATE TABLE console_users (
    user_name     TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    creation_date INTEGER NOT NULL
);
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    principal  TEXT NOT NULL,
    created    INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen);
