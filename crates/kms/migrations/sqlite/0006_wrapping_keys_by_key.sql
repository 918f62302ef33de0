-- 0006: wrapping keys (import tokens) by key, in the order they were issued (rowid), so that
-- the oldest outstanding tokens of a key can be withdrawn beyond the per-key limit.
CREATE INDEX wrapping_keys_by_key ON wrapping_keys(key_id);
