-- fluxdepot SQLite schema, version 3: coarser counters for the dashboard and total_count of queries
-- without a syntax filter or a period (the common case): flows per (issuer, status), flows per status,
-- and error findings per (code, rule). flow_totals has a row per (issuer, status, syntax), so summing it
-- for an operator reads ~4x the rows it returns; these answer in one key-ordered read.
-- Kept by triggers like those of 0002 (which stay as they are), so they change in the very transaction
-- that changes the rows they count.

CREATE TABLE flow_issuer_status_totals (
    issuer_siret TEXT NOT NULL,
    status       TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (issuer_siret, status)   -- the dashboard's order
) WITHOUT ROWID;
CREATE TABLE flow_status_totals (
    status TEXT NOT NULL PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE error_code_totals (
    code TEXT NOT NULL,
    rule TEXT NOT NULL,   -- '' when the finding has no rule
    n    INTEGER NOT NULL,
    PRIMARY KEY (code, rule)
) WITHOUT ROWID;

CREATE TRIGGER flows_count_issuer_status_insert AFTER INSERT ON flows
BEGIN
    INSERT INTO flow_issuer_status_totals (issuer_siret, status, n) VALUES (NEW.issuer_siret, NEW.status, 1)
    ON CONFLICT (issuer_siret, status) DO UPDATE SET n = n + 1;
    INSERT INTO flow_status_totals (status, n) VALUES (NEW.status, 1)
    ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER flows_count_issuer_status_update AFTER UPDATE OF status ON flows
WHEN OLD.status <> NEW.status
BEGIN
    UPDATE flow_issuer_status_totals SET n = n - 1 WHERE issuer_siret = OLD.issuer_siret AND status = OLD.status;
    UPDATE flow_status_totals SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO flow_issuer_status_totals (issuer_siret, status, n) VALUES (NEW.issuer_siret, NEW.status, 1)
    ON CONFLICT (issuer_siret, status) DO UPDATE SET n = n + 1;
    INSERT INTO flow_status_totals (status, n) VALUES (NEW.status, 1)
    ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER flows_count_issuer_status_delete AFTER DELETE ON flows
BEGIN
    UPDATE flow_issuer_status_totals SET n = n - 1 WHERE issuer_siret = OLD.issuer_siret AND status = OLD.status;
    UPDATE flow_status_totals SET n = n - 1 WHERE status = OLD.status;
END;

-- Counted while the flow row exists, exactly as error_totals is (0002's findings triggers read it).
CREATE TRIGGER findings_count_code_insert AFTER INSERT ON findings
WHEN NEW.severity = 'error'
BEGIN
    INSERT INTO error_code_totals (code, rule, n)
    SELECT NEW.code, COALESCE(NEW.rule, ''), 1 FROM flows f WHERE f.flow_number = NEW.flow_number
    ON CONFLICT (code, rule) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER findings_count_code_delete AFTER DELETE ON findings
WHEN OLD.severity = 'error'
BEGIN
    UPDATE error_code_totals SET n = n - 1
    WHERE code = OLD.code AND rule = COALESCE(OLD.rule, '')
      AND EXISTS (SELECT 1 FROM flows WHERE flow_number = OLD.flow_number);
END;

-- Backfill from the 0002 counters (equal to the rows by their triggers; far smaller than the rows).
INSERT INTO flow_issuer_status_totals (issuer_siret, status, n)
SELECT issuer_siret, status, SUM(n) FROM flow_totals GROUP BY issuer_siret, status;
INSERT INTO flow_status_totals (status, n)
SELECT status, SUM(n) FROM flow_totals GROUP BY status;
INSERT INTO error_code_totals (code, rule, n)
SELECT code, rule, SUM(n) FROM error_totals GROUP BY code, rule;
