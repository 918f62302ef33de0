-- 0001: accounts, access keys, keys, key versions, wrapping keys, metadata.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    account_id    TEXT PRIMARY KEY,
    creation_date INTEGER NOT NULL
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(account_id),
    sealed_secret BLOB NOT NULL,
    enabled       INTEGER NOT NULL,
    creation_date INTEGER NOT NULL
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
    creation_date       INTEGER NOT NULL,
    creator             TEXT NOT NULL,
    primary_version     TEXT NOT NULL,
    delete_date         INTEGER,
    material_present    INTEGER NOT NULL,
    material_expire     INTEGER,
    material_commitment BLOB,
    deletion_protection INTEGER NOT NULL,
    deletion_protection_description TEXT NOT NULL,
    automatic_rotation  INTEGER NOT NULL,
    rotation_interval   INTEGER,
    last_rotation_date  INTEGER
);
CREATE INDEX keys_by_account ON keys(account_id, region, creation_date);
CREATE INDEX keys_by_delete_date ON keys(delete_date) WHERE delete_date IS NOT NULL;
CREATE INDEX keys_by_material_expire ON keys(material_expire) WHERE material_expire IS NOT NULL;

CREATE TABLE key_versions (
    key_id          TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    version_id      TEXT NOT NULL,
    creation_date   INTEGER NOT NULL,
    sealed_material BLOB,
    PRIMARY KEY (key_id, version_id)
);

CREATE TABLE wrapping_keys (
    wrapping_key_id    TEXT PRIMARY KEY,
    key_id             TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    account_id         TEXT NOT NULL,
    algorithm          TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    expires            INTEGER NOT NULL
);
CREATE INDEX wrapping_keys_by_expiry ON wrapping_keys(expires);

CREATE TABLE key_tags (
    key_id    TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
