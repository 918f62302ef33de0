-- 0004: failed unwrap attempts per wrapping key (a token is withdrawn after too many).
ALTER TABLE wrapping_keys ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
