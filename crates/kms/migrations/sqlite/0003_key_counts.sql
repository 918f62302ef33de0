-- 0003: ListKeys at a million keys. Key counts per account and region kept by triggers
-- (exact, no scan), and the listing index covering the full sort order.
CREATE TABLE key_counts (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (account_id, region)
);
INSERT INTO key_counts (account_id, region, n)
    SELECT account_id, region, COUNT(*) FROM keys GROUP BY account_id, region;

CREATE TRIGGER keys_count_insert AFTER INSERT ON keys BEGIN
    INSERT OR IGNORE INTO key_counts (account_id, region, n) VALUES (NEW.account_id, NEW.region, 0);
    UPDATE key_counts SET n = n + 1 WHERE account_id = NEW.account_id AND region = NEW.region;
END;
CREATE TRIGGER keys_count_delete AFTER DELETE ON keys BEGIN
    UPDATE key_counts SET n = n - 1 WHERE account_id = OLD.account_id AND region = OLD.region;
END;

DROP INDEX keys_by_account;
CREATE INDEX keys_by_account ON keys(account_id, region, creation_date, key_id);
