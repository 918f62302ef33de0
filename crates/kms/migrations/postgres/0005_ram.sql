-- 0005 (PostgreSQL): RAM identities (issue 16), as SQLite migration 0008. Users, groups, roles and custom policies are entities of
-- an account, each one row with its typed record as JSON; memberships (user -> group) and
-- policy attachments (user/group/role -> policy) are links between entity ids. Access keys
-- of RAM users name their user (NULL: the account's root credentials, as before). STS
-- sessions hold the sealed secret and the SHA-256 of the security token, never the token.
CREATE TABLE ram_entities (
    entity_id  TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE UNIQUE INDEX ram_entities_name ON ram_entities (account_id, kind, name);
CREATE TABLE ram_links (
    kind       TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    target_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    created    BIGINT NOT NULL,
    PRIMARY KEY (kind, source_id, target_id)
);
CREATE INDEX ram_links_target ON ram_links (kind, target_id);
CREATE TABLE sts_sessions (
    access_key_id  TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    role_id        TEXT NOT NULL,
    session_name   TEXT NOT NULL,
    sealed_secret  BYTEA NOT NULL,
    token_hash     TEXT NOT NULL,
    session_policy TEXT,
    caller_arn     TEXT NOT NULL,
    expiration     BIGINT NOT NULL,
    creation_date  BIGINT NOT NULL
);
CREATE INDEX sts_sessions_expiration ON sts_sessions (expiration);
ALTER TABLE access_keys ADD COLUMN user_id TEXT;
