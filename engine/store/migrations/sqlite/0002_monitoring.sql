-- fluxdepot SQLite schema, version 2: monitoring (search, dashboard, event feed), token lookup ids.
-- Counters and the event feed are kept by triggers, so they change in the very transaction that changes
-- a flow's status, inserts a flow, a status event or a finding: they can never disagree with the rows.
-- A deposit day is the UTC date of deposited_at: substr(deposited_at, 1, 10) ("2026-01-05").

-- --- search ----------------------------------------------------------------------------------------
-- The search order is issuer ASC, deposited_at DESC, flow_number DESC: the 0001 index had flow_number
-- ascending, which cannot serve it (nor its keyset), so it is replaced.
DROP INDEX flows_issuer_deposited;
CREATE INDEX flows_search ON flows (issuer_siret, deposited_at DESC, flow_number DESC);
-- Technical users and partners see what they deposited: the same order, per depositor.
CREATE INDEX flows_depositor_search ON flows (depositor, issuer_siret, deposited_at DESC, flow_number DESC);
-- Oldest flow per (non-final) status: MIN(status_changed_at) is one index seek. Supersedes flows_status.
DROP INDEX flows_status;
CREATE INDEX flows_status_changed ON flows (status, status_changed_at);
-- ... and per issuer (a user's dashboard: a seek per followed issuer instead of walking its flows).
CREATE INDEX flows_issuer_status ON flows (issuer_siret, status, status_changed_at);

-- --- counters --------------------------------------------------------------------------------------
-- Flows per issuer, syntax and status: all time (small: answers queries without a period) ...
CREATE TABLE flow_totals (
    issuer_siret TEXT NOT NULL,
    syntax       TEXT NOT NULL,
    status       TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (issuer_siret, status, syntax)   -- GROUP BY issuer, status streams in key order
) WITHOUT ROWID;
-- ... and per deposit day (queries with a period).
CREATE TABLE flow_day_counts (
    issuer_siret TEXT NOT NULL,
    day          TEXT NOT NULL,
    syntax       TEXT NOT NULL,
    status       TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (issuer_siret, day, syntax, status)
) WITHOUT ROWID;
CREATE INDEX flow_day_counts_day ON flow_day_counts (day);

-- Error findings (severity 'error') per issuer, syntax, code and rule ('' when the finding has no rule).
CREATE TABLE error_totals (
    issuer_siret TEXT NOT NULL,
    syntax       TEXT NOT NULL,
    code         TEXT NOT NULL,
    rule         TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (code, rule, issuer_siret, syntax)   -- GROUP BY code, rule streams in key order
) WITHOUT ROWID;
CREATE INDEX error_totals_issuer ON error_totals (issuer_siret);
CREATE TABLE error_day_counts (
    issuer_siret TEXT NOT NULL,
    day          TEXT NOT NULL,
    syntax       TEXT NOT NULL,
    code         TEXT NOT NULL,
    rule         TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (issuer_siret, day, syntax, code, rule)
) WITHOUT ROWID;
CREATE INDEX error_day_counts_day ON error_day_counts (day);

CREATE TRIGGER flows_count_insert AFTER INSERT ON flows
BEGIN
    INSERT INTO flow_totals (issuer_siret, syntax, status, n)
    VALUES (NEW.issuer_siret, NEW.syntax, NEW.status, 1)
    ON CONFLICT (issuer_siret, status, syntax) DO UPDATE SET n = n + 1;
    INSERT INTO flow_day_counts (issuer_siret, day, syntax, status, n)
    VALUES (NEW.issuer_siret, substr(NEW.deposited_at, 1, 10), NEW.syntax, NEW.status, 1)
    ON CONFLICT (issuer_siret, day, syntax, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER flows_count_status AFTER UPDATE OF status ON flows
WHEN OLD.status <> NEW.status
BEGIN
    UPDATE flow_totals SET n = n - 1
    WHERE issuer_siret = OLD.issuer_siret AND syntax = OLD.syntax AND status = OLD.status;
    UPDATE flow_day_counts SET n = n - 1
    WHERE issuer_siret = OLD.issuer_siret AND day = substr(OLD.deposited_at, 1, 10)
      AND syntax = OLD.syntax AND status = OLD.status;
    INSERT INTO flow_totals (issuer_siret, syntax, status, n)
    VALUES (NEW.issuer_siret, NEW.syntax, NEW.status, 1)
    ON CONFLICT (issuer_siret, status, syntax) DO UPDATE SET n = n + 1;
    INSERT INTO flow_day_counts (issuer_siret, day, syntax, status, n)
    VALUES (NEW.issuer_siret, substr(NEW.deposited_at, 1, 10), NEW.syntax, NEW.status, 1)
    ON CONFLICT (issuer_siret, day, syntax, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER flows_count_delete AFTER DELETE ON flows
BEGIN
    UPDATE flow_totals SET n = n - 1
    WHERE issuer_siret = OLD.issuer_siret AND syntax = OLD.syntax AND status = OLD.status;
    UPDATE flow_day_counts SET n = n - 1
    WHERE issuer_siret = OLD.issuer_siret AND day = substr(OLD.deposited_at, 1, 10)
      AND syntax = OLD.syntax AND status = OLD.status;
END;

CREATE TRIGGER findings_count_insert AFTER INSERT ON findings
WHEN NEW.severity = 'error'
BEGIN
    INSERT INTO error_totals (issuer_siret, syntax, code, rule, n)
    SELECT f.issuer_siret, f.syntax, NEW.code, COALESCE(NEW.rule, ''), 1 FROM flows f
    WHERE f.flow_number = NEW.flow_number
    ON CONFLICT (code, rule, issuer_siret, syntax) DO UPDATE SET n = n + 1;
    INSERT INTO error_day_counts (issuer_siret, day, syntax, code, rule, n)
    SELECT f.issuer_siret, substr(f.deposited_at, 1, 10), f.syntax, NEW.code, COALESCE(NEW.rule, ''), 1
    FROM flows f
    WHERE f.flow_number = NEW.flow_number
    ON CONFLICT (issuer_siret, day, syntax, code, rule) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER findings_count_delete AFTER DELETE ON findings
WHEN OLD.severity = 'error'
BEGIN
    UPDATE error_totals SET n = n - 1
    WHERE code = OLD.code AND rule = COALESCE(OLD.rule, '')
      AND (issuer_siret, syntax) = (SELECT issuer_siret, syntax FROM flows WHERE flow_number = OLD.flow_number);
    UPDATE error_day_counts SET n = n - 1
    WHERE code = OLD.code AND rule = COALESCE(OLD.rule, '')
      AND (issuer_siret, day, syntax) = (
          SELECT issuer_siret, substr(deposited_at, 1, 10), syntax FROM flows WHERE flow_number = OLD.flow_number
      );
END;

-- Backfill from the rows an existing database already holds.
INSERT INTO flow_totals (issuer_siret, syntax, status, n)
SELECT issuer_siret, syntax, status, COUNT(*) FROM flows GROUP BY issuer_siret, syntax, status;
INSERT INTO flow_day_counts (issuer_siret, day, syntax, status, n)
SELECT issuer_siret, substr(deposited_at, 1, 10), syntax, status, COUNT(*) FROM flows
GROUP BY issuer_siret, substr(deposited_at, 1, 10), syntax, status;
INSERT INTO error_totals (issuer_siret, syntax, code, rule, n)
SELECT f.issuer_siret, f.syntax, e.code, COALESCE(e.rule, ''), COUNT(*)
FROM findings e JOIN flows f ON f.flow_number = e.flow_number
WHERE e.severity = 'error'
GROUP BY f.issuer_siret, f.syntax, e.code, COALESCE(e.rule, '');
INSERT INTO error_day_counts (issuer_siret, day, syntax, code, rule, n)
SELECT f.issuer_siret, substr(f.deposited_at, 1, 10), f.syntax, e.code, COALESCE(e.rule, ''), COUNT(*)
FROM findings e JOIN flows f ON f.flow_number = e.flow_number
WHERE e.severity = 'error'
GROUP BY f.issuer_siret, substr(f.deposited_at, 1, 10), f.syntax, e.code, COALESCE(e.rule, '');

-- --- event feed ------------------------------------------------------------------------------------
-- One row per status event, numbered in commit order (SQLite has one writer at a time, and the row is
-- written inside the event's transaction). AUTOINCREMENT: a cursor is never reused, even after deletes.
-- The flow's issuer and depositor are copied so visibility filters need no join.
CREATE TABLE event_feed (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_number  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    issuer_siret TEXT NOT NULL,
    depositor    TEXT NOT NULL,
    status       TEXT NOT NULL,
    event        TEXT,
    at           TEXT NOT NULL
);
CREATE INDEX event_feed_flow ON event_feed (flow_number, id);

CREATE TRIGGER status_events_feed AFTER INSERT ON status_events
BEGIN
    INSERT INTO event_feed (flow_number, seq, issuer_siret, depositor, status, event, at)
    SELECT NEW.flow_number, NEW.seq, f.issuer_siret, f.depositor, NEW.status, NEW.event, NEW.at
    FROM flows f WHERE f.flow_number = NEW.flow_number;
END;

-- Existing events, in the order they were written.
INSERT INTO event_feed (flow_number, seq, issuer_siret, depositor, status, event, at)
SELECT e.flow_number, e.seq, f.issuer_siret, f.depositor, e.status, e.event, e.at
FROM status_events e JOIN flows f ON f.flow_number = e.flow_number
ORDER BY e.rowid;

-- --- bearer tokens ---------------------------------------------------------------------------------
-- engine.secrets.secret_lookup_id of the token: finds the row whose token_hash to verify.
ALTER TABLE users ADD COLUMN token_lookup TEXT;
ALTER TABLE technical_users ADD COLUMN token_lookup TEXT;
CREATE UNIQUE INDEX users_token_lookup ON users (token_lookup);
CREATE UNIQUE INDEX technical_users_token_lookup ON technical_users (token_lookup);
