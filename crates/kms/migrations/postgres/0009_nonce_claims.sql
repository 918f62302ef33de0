-- 0009 (PostgreSQL): signature nonce claims in a ring of 16 partitions by the time bucket of
-- the request's signed timestamp (300-second buckets, slot = bucket mod 16), keyed by the
-- first 8 bytes of SHA-256(access key id || 0 || nonce) as a BIGINT. A replay carries the
-- same signed timestamp, so it always lands in the same partition and conflicts on the
-- primary key; claims are forgotten by truncating a partition once no timestamp it can
-- hold could pass the time check (see store/postgres.rs), so there is no `until` column, no
-- second index and no DELETE.
CREATE TABLE nonce_claims (
    slot   SMALLINT NOT NULL,
    digest BIGINT NOT NULL,
    PRIMARY KEY (slot, digest)
) PARTITION BY LIST (slot);
CREATE TABLE nonce_claims_0 PARTITION OF nonce_claims FOR VALUES IN (0);
CREATE TABLE nonce_claims_1 PARTITION OF nonce_claims FOR VALUES IN (1);
CREATE TABLE nonce_claims_2 PARTITION OF nonce_claims FOR VALUES IN (2);
CREATE TABLE nonce_claims_3 PARTITION OF nonce_claims FOR VALUES IN (3);
CREATE TABLE nonce_claims_4 PARTITION OF nonce_claims FOR VALUES IN (4);
CREATE TABLE nonce_claims_5 PARTITION OF nonce_claims FOR VALUES IN (5);
CREATE TABLE nonce_claims_6 PARTITION OF nonce_claims FOR VALUES IN (6);
CREATE TABLE nonce_claims_7 PARTITION OF nonce_claims FOR VALUES IN (7);
CREATE TABLE nonce_claims_8 PARTITION OF nonce_claims FOR VALUES IN (8);
CREATE TABLE nonce_claims_9 PARTITION OF nonce_claims FOR VALUES IN (9);
CREATE TABLE nonce_claims_10 PARTITION OF nonce_claims FOR VALUES IN (10);
CREATE TABLE nonce_claims_11 PARTITION OF nonce_claims FOR VALUES IN (11);
CREATE TABLE nonce_claims_12 PARTITION OF nonce_claims FOR VALUES IN (12);
CREATE TABLE nonce_claims_13 PARTITION OF nonce_claims FOR VALUES IN (13);
CREATE TABLE nonce_claims_14 PARTITION OF nonce_claims FOR VALUES IN (14);
CREATE TABLE nonce_claims_15 PARTITION OF nonce_claims FOR VALUES IN (15);

-- Upgrade: the claims still held in the old table move over. The old rows kept
-- until = max(timestamp, now) + 900 and not the timestamp, which was therefore in
-- [until - 1800, until - 900]: each row is copied into the slot of every bucket of that
-- range, so its replay is refused whichever timestamp it carries.
INSERT INTO nonce_claims (slot, digest)
SELECT DISTINCT (b % 16)::smallint,
       ('x' || encode(substring(n.digest from 1 for 8), 'hex'))::bit(64)::bigint
FROM nonces n,
     generate_series(floor((n.until - 1800) / 300.0)::bigint, floor((n.until - 900) / 300.0)::bigint) b
WHERE length(n.digest) >= 8
ON CONFLICT DO NOTHING;

-- Nodes of earlier versions claim in `nonces`: without it they fail closed (their
-- requests get an error) rather than claiming where this version does not look.
DROP TABLE nonces;
