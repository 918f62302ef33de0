-- 0009 (PostgreSQL): signature nonce claims in a ring of 16 tables by the time bucket of the
-- request's signed timestamp (300-second buckets, bucket b in nonce_claims_<b mod 16>), keyed
-- by the first 8 bytes of SHA-256(access key id || 0 || nonce) as a BIGINT. A replay carries
-- the same signed timestamp, so it always lands in the same table and conflicts on the primary
-- key; claims are forgotten by truncating a table once no timestamp it can hold could pass
-- the time check (see store/postgres.rs), so there is no `until` column, no second index and
-- no DELETE. Plain tables rather than partitions of one: routing each row to its partition
-- cost about a third more PostgreSQL CPU per claim (measured with pgbench).
CREATE TABLE nonce_claims_0 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_1 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_2 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_3 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_4 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_5 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_6 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_7 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_8 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_9 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_10 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_11 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_12 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_13 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_14 (digest BIGINT PRIMARY KEY);
CREATE TABLE nonce_claims_15 (digest BIGINT PRIMARY KEY);

-- Upgrade: the claims still held in the old table move over. The old rows kept
-- until = max(timestamp, now) + 900 and not the timestamp, which was therefore in
-- [until - 1800, until - 900]: each row is copied into the table of every bucket of that
-- range, so its replay is refused whichever timestamp it carries.
DO $$
BEGIN
    FOR s IN 0..15 LOOP
        EXECUTE format(
            'INSERT INTO nonce_claims_%s (digest) '
            'SELECT DISTINCT (''x'' || encode(substring(n.digest from 1 for 8), ''hex''))::bit(64)::bigint '
            'FROM nonces n, generate_series(floor((n.until - 1800) / 300.0)::bigint, '
            '                               floor((n.until - 900) / 300.0)::bigint) b '
            'WHERE length(n.digest) >= 8 AND b %% 16 = %s '
            'ON CONFLICT DO NOTHING', s, s);
    END LOOP;
END
$$;

-- Nodes of earlier versions claim in `nonces`: without it they fail closed (their
-- requests get an error) rather than claiming where this version does not look.
DROP TABLE nonces;
