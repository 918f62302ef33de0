-- 0002: aliases, and a per-key count of versions (for the version limit).
CREATE TABLE aliases (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    alias_name    TEXT NOT NULL,
    key_id        TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    creation_date INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, alias_name)
);
CREATE INDEX aliases_by_key ON aliases(key_id);

ALTER TABLE keys ADD COLUMN version_count INTEGER NOT NULL DEFAULT 1;
CREATE INDEX keys_by_rotation ON keys(last_rotation_date) WHERE automatic_rotation = 1;
