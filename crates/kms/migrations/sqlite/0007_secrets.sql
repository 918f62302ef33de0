-- 0007: Secrets Manager. A secret (unique name per account and region), its versions (the
-- value sealed under a data key; the data key itself encrypted under the secret's
-- EncryptionKeyId as a ciphertext blob: never a value in clear), its version stages (a stage
-- is on at most one version) and its tags.
CREATE TABLE secrets (
    secret_id           TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL,
    region              TEXT NOT NULL,
    secret_name         TEXT NOT NULL,
    secret_type         TEXT NOT NULL,
    description         TEXT NOT NULL,
    encryption_key_id   TEXT NOT NULL,
    extended_config     TEXT,
    creation_date       INTEGER NOT NULL,
    update_date         INTEGER NOT NULL,
    planned_delete_time INTEGER,
    automatic_rotation  INTEGER NOT NULL,
    rotation_interval   INTEGER,
    last_rotation_date  INTEGER,
    next_rotation_date  INTEGER,
    UNIQUE (account_id, region, secret_name)
);
CREATE INDEX secrets_by_planned_delete ON secrets(planned_delete_time)
    WHERE planned_delete_time IS NOT NULL;

CREATE TABLE secret_versions (
    secret_id      TEXT NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    version_id     TEXT NOT NULL,
    creation_date  INTEGER NOT NULL,
    data_type      TEXT NOT NULL,
    sealed_data_key BLOB NOT NULL,
    sealed_value   BLOB NOT NULL,
    PRIMARY KEY (secret_id, version_id)
);

CREATE TABLE secret_stages (
    secret_id  TEXT NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    stage      TEXT NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (secret_id, stage)
);

CREATE TABLE secret_tags (
    secret_id TEXT NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (secret_id, tag_key)
);
