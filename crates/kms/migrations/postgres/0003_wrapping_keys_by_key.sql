-- 0003: wrapping keys (import tokens) by key, in the order they were issued (seq), so that
-- the oldest outstanding tokens of a key can be withdrawn beyond the per-key limit.
ALTER TABLE wrapping_keys ADD COLUMN seq BIGSERIAL NOT NULL;
CREATE INDEX wrapping_keys_by_key ON wrapping_keys(key_id, seq);
