-- 0001 (PostgreSQL): the whole schema of SQLite migrations 0001-0004 in one step, plus the
-- table of signature nonces shared by every node. Applied under an advisory lock, so several
-- nodes starting at once apply it exactly once.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    account_id    TEXT PRIMARY KEY,
    creation_date BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(account_id),
    sealed_secret BYTEA NOT NULL,
    enabled       BOOLEAN NOT NULL,
    creation_date BIGINT NOT NULL
);

CREATE TABLE keys (
    key_id              TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL REFERENCES accounts(account_id),
    region              TEXT NOT NULL,
    description         TEXT NOT NULL,
    key_spec            TEXT NOT NULL,
    key_usage           TEXT NOT NULL,
    origin              TEXT NOT NULL,
    protection_level    TEXT NOT NULL,
    state               TEXT NOT NULL,
    creation_date       BIGINT NOT NULL,
    creator             TEXT NOT NULL,
    primary_version     TEXT NOT NULL,
    delete_date         BIGINT,
    material_present    BOOLEAN NOT NULL,
    material_expire     BIGINT,
    material_commitment BYTEA,
    deletion_protection BOOLEAN NOT NULL,
    deletion_protection_description TEXT NOT NULL,
    automatic_rotation  BOOLEAN NOT NULL,
    rotation_interval   BIGINT,
    last_rotation_date  BIGINT,
    version_count       BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX keys_by_account ON keys(account_id, region, creation_date, key_id);
CREATE INDEX keys_by_delete_date ON keys(delete_date) WHERE delete_date IS NOT NULL;
CREATE INDEX keys_by_material_expire ON keys(material_expire) WHERE material_expire IS NOT NULL;
CREATE INDEX keys_by_rotation ON keys(last_rotation_date) WHERE automatic_rotation;

CREATE TABLE key_versions (
    key_id          TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    version_id      TEXT NOT NULL,
    creation_date   BIGINT NOT NULL,
    sealed_material BYTEA,
    seq             BIGSERIAL NOT NULL,
    PRIMARY KEY (key_id, version_id)
);

CREATE TABLE wrapping_keys (
    wrapping_key_id    TEXT PRIMARY KEY,
    key_id             TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    account_id         TEXT NOT NULL,
    algorithm          TEXT NOT NULL,
    sealed_private_key BYTEA NOT NULL,
    expires            BIGINT NOT NULL,
    failures           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX wrapping_keys_by_expiry ON wrapping_keys(expires);

CREATE TABLE key_tags (
    key_id    TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);

CREATE TABLE aliases (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    alias_name    TEXT NOT NULL,
    key_id        TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    creation_date BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, alias_name)
);
CREATE INDEX aliases_by_key ON aliases(key_id);

-- Key counts per account and region, kept by triggers (exact, no scan).
CREATE TABLE key_counts (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);
CREATE FUNCTION keys_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_counts (account_id, region, n) VALUES (NEW.account_id, NEW.region, 1)
        ON CONFLICT (account_id, region) DO UPDATE SET n = key_counts.n + 1;
    RETURN NULL;
END $$;
CREATE FUNCTION keys_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE key_counts SET n = n - 1 WHERE account_id = OLD.account_id AND region = OLD.region;
    RETURN NULL;
END $$;
CREATE TRIGGER keys_count_insert AFTER INSERT ON keys FOR EACH ROW EXECUTE FUNCTION keys_count_insert();
CREATE TRIGGER keys_count_delete AFTER DELETE ON keys FOR EACH ROW EXECUTE FUNCTION keys_count_delete();

-- Signature nonces seen by any node: 16 bytes of SHA-256(access key id || 0 || nonce) and
-- the time until which the nonce must be remembered.
CREATE TABLE nonces (
    digest BYTEA PRIMARY KEY,
    until  BIGINT NOT NULL
);
CREATE INDEX nonces_by_until ON nonces(until);
