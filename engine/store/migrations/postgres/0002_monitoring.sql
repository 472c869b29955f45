-- fluxdepot PostgreSQL schema, version 2: dashboard counters (as SQLite's 0002, same tables and keys).
-- A deposit day is the UTC date of deposited_at.
-- The counters are not kept by triggers here: several daemons change statuses concurrently, and a
-- trigger would lock counter rows in statement order, which can deadlock (W→I against I→W). The store
-- adds each transaction's deltas itself, in key order, just before the feed counter and COMMIT
-- (engine.store.postgres_counters), so every transaction takes these row locks in one global order.

CREATE TABLE flow_totals (
    issuer_siret text NOT NULL,
    syntax       text NOT NULL,
    status       text NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (issuer_siret, syntax, status)
);
CREATE TABLE flow_day_counts (
    issuer_siret text NOT NULL,
    day          date NOT NULL,
    syntax       text NOT NULL,
    status       text NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (issuer_siret, day, syntax, status)
);
CREATE INDEX flow_day_counts_day ON flow_day_counts (day);

-- Error findings (severity 'error') per issuer, syntax, code and rule ('' when the finding has no rule).
CREATE TABLE error_totals (
    issuer_siret text NOT NULL,
    syntax       text NOT NULL,
    code         text NOT NULL,
    rule         text NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (issuer_siret, syntax, code, rule)
);
CREATE TABLE error_day_counts (
    issuer_siret text NOT NULL,
    day          date NOT NULL,
    syntax       text NOT NULL,
    code         text NOT NULL,
    rule         text NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (issuer_siret, day, syntax, code, rule)
);
CREATE INDEX error_day_counts_day ON error_day_counts (day);

-- Backfill from the rows an existing database already holds.
INSERT INTO flow_totals (issuer_siret, syntax, status, n)
SELECT issuer_siret, syntax, status, count(*) FROM flows GROUP BY issuer_siret, syntax, status;
INSERT INTO flow_day_counts (issuer_siret, day, syntax, status, n)
SELECT issuer_siret, (deposited_at AT TIME ZONE 'UTC')::date, syntax, status, count(*) FROM flows
GROUP BY 1, 2, 3, 4;
INSERT INTO error_totals (issuer_siret, syntax, code, rule, n)
SELECT f.issuer_siret, f.syntax, e.code, COALESCE(e.rule, ''), count(*)
FROM findings e JOIN flows f ON f.flow_number = e.flow_number
WHERE e.severity = 'error' GROUP BY 1, 2, 3, 4;
INSERT INTO error_day_counts (issuer_siret, day, syntax, code, rule, n)
SELECT f.issuer_siret, (f.deposited_at AT TIME ZONE 'UTC')::date, f.syntax, e.code, COALESCE(e.rule, ''), count(*)
FROM findings e JOIN flows f ON f.flow_number = e.flow_number
WHERE e.severity = 'error' GROUP BY 1, 2, 3, 4, 5;
