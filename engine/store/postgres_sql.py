"""The SQL ``PostgresStore`` runs for flows, events, verdicts and the work queue: constants with positional
parameters (asyncpg's ``$n``), the meaning of each listed beside it. Nothing here is built from values
(STYLE rule 4).
"""

# ruff: noqa: S608 - statements join SQL constants of this module only, never values; names are not secrets

from __future__ import annotations

WORK_CHANNEL = "fluxdepot_work"  # NOTIFY after a job is (re)created: idle workers claim
EVENTS_CHANNEL = "fluxdepot_events"  # NOTIFY with the last cursor after status events are appended

NEXT_FLOW_SEQ = "SELECT nextval('flow_seq')"

# $1 seq, $2 flow_number, $3 file_name, $4 syntax, $5 declared_syntax, $6 channel, $7 issuer_siret,
# $8 depositor, $9 status, $10 deposited_at, $11 sha256, $12 size_bytes, $13 blob_key, $14 tracking_id,
# $15 partner_code
FLOW_COLUMNS = """flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
       deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
       invoice_count, integrated_count, rejected_count, return_flows"""
INSERT_FLOW = (
    """
INSERT INTO flows (
    seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
    deposited_at, status_changed_at, sha256, size_bytes, blob_key, tracking_id, partner_code
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15)
RETURNING """
    + FLOW_COLUMNS
)

_SELECT_FLOW = "SELECT " + FLOW_COLUMNS + " FROM flows "
GET_FLOW = _SELECT_FLOW + "WHERE flow_number = $1"  # $1 flow_number
FIND_BY_TRACKING_ID = _SELECT_FLOW + "WHERE depositor = $1 AND tracking_id = $2"

GET_STATUS = "SELECT status FROM flows WHERE flow_number = $1"
GET_BLOB_KEY = "SELECT blob_key FROM flows WHERE flow_number = $1"
INSERT_CONTENT = "INSERT INTO flow_contents (flow_number, content) VALUES ($1, $2)"
GET_RULESET_VERSION = "SELECT ruleset_version FROM flows WHERE flow_number = $1"
ALL_FLOW_NUMBERS = "SELECT flow_number FROM flows ORDER BY seq"

# Compare-and-set: $1 flow_number, $2 expected, $3 new status, $4 at. No row: not (or no longer) expected.
SET_STATUS = (
    """
UPDATE flows SET status = $3, status_changed_at = $4
WHERE flow_number = $1 AND status = $2
RETURNING """
    + FLOW_COLUMNS
)

# $1 flow_number, $2 invoice_count, $3 integrated_count, $4 rejected_count, $5 ruleset_version
SET_VERDICT_COUNTS = (
    """
UPDATE flows
SET invoice_count = $2, integrated_count = $3, rejected_count = $4, ruleset_version = $5
WHERE flow_number = $1
RETURNING """
    + FLOW_COLUMNS
)

# $1 flow_number, $2 name: appended once; returns whether the flow exists.
ADD_RETURN_FLOW = """
WITH upd AS (
    UPDATE flows
    SET return_flows = array_append(return_flows, $2),
        report_written = report_written OR ($2 LIKE 'FSO%' AND $2 LIKE '%\\_' || flow_number || '.xml')
    WHERE flow_number = $1 AND NOT ($2 = ANY (return_flows))
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM flows WHERE flow_number = $1)
"""

# --- status events ---------------------------------------------------------------------------------
LAST_EVENT = "SELECT seq, hash FROM status_events WHERE flow_number = $1 ORDER BY seq DESC LIMIT 1"
HISTORY = """
SELECT flow_number, seq, status, event, at, actor, detail, prev_hash, hash
FROM status_events WHERE flow_number = $1 ORDER BY seq
"""
# The last statement of every transaction that appends events: take the feed counter (its row lock is
# held until COMMIT, so cursors follow commit order), insert the events with consecutive cursors, and
# NOTIFY the last cursor (delivered at COMMIT). Arrays: $1 flow_number, $2 seq, $3 status, $4 event,
# $5 at, $6 actor, $7 detail, $8 prev_hash, $9 hash.
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"  # monitoring (postgres_base._planned)

# The end of a write transaction (postgres_status.commit, migration 0003): stage, then flush + commit.
STAGE_FLUSH = "SELECT set_config('fluxdepot.flush', $1, true)"
FLUSH_AND_COMMIT = "SELECT fluxdepot_flush(); COMMIT"

# --- invoices and findings -------------------------------------------------------------------------
DELETE_INVOICES = "DELETE FROM invoices WHERE flow_number = $1"
DELETE_FINDINGS = "DELETE FROM findings WHERE flow_number = $1"
INVOICE_COLUMNS = (
    "flow_number",
    "idx",
    "document",
    "number",
    "type_code",
    "issue_date",
    "issue_year",
    "currency",
    "supplier_id",
    "supplier_name",
    "buyer_id",
    "buyer_name",
    "service_code",
    "engagement_number",
    "total_without_vat",
    "total_with_vat",
    "amount_due",
    "guideline",
    "has_attachment",
    "status",
)
FINDING_COLUMNS = (
    "flow_number",
    "invoice_idx",
    "position",
    "code",
    "message",
    "severity",
    "rule",
    "business_term",
    "location",
    "document",
)
INVOICES_UNIQUE = "invoices_integrated"  # the unique index: one integration per (supplier, year, number)

NEXT_FINDING_POSITION = "SELECT COALESCE(MAX(position) + 1, 0) FROM findings WHERE flow_number = $1"
FLOW_FINDINGS = """
SELECT code, message, severity, rule, business_term, location, document
FROM findings WHERE flow_number = $1 AND invoice_idx IS NULL ORDER BY position
"""
INVOICES_WITH_FINDINGS = """
SELECT i.idx, i.document, i.number, i.type_code, i.issue_date, i.currency, i.supplier_id, i.supplier_name,
       i.buyer_id, i.buyer_name, i.service_code, i.engagement_number, i.total_without_vat,
       i.total_with_vat, i.amount_due, i.guideline, i.has_attachment, i.status AS invoice_status,
       f.code AS f_code, f.message AS f_message, f.severity AS f_severity, f.rule AS f_rule,
       f.business_term AS f_business_term, f.location AS f_location, f.document AS f_document
FROM invoices i
LEFT JOIN findings f ON f.flow_number = i.flow_number AND f.invoice_idx = i.idx
WHERE i.flow_number = $1
ORDER BY i.idx, f.position
"""
# $1 supplier_id, $2 years, $3 numbers (parallel arrays); the oldest integrating flow comes first.
INTEGRATED_INVOICE_FLOWS = """
SELECT i.issue_year, i.number, i.flow_number
FROM invoices i JOIN flows fl ON fl.flow_number = i.flow_number
WHERE i.supplier_id = $1 AND i.status = 'integrated'
  AND (i.issue_year, i.number) IN (SELECT * FROM unnest($2::text[], $3::text[]))
ORDER BY fl.seq, i.idx
"""

# --- work queue ------------------------------------------------------------------------------------
# $1 flow_number, $2 available_at. NOTIFY idle workers when a job was created (delivered at COMMIT).
ENSURE_JOB = """
WITH created AS (
    INSERT INTO jobs (flow_number, available_at, attempts) VALUES ($1, $2, 0)
    ON CONFLICT (flow_number) DO NOTHING
    RETURNING 1
)
SELECT pg_notify('fluxdepot_work', '') FROM created
"""
DELETE_JOB = "DELETE FROM jobs WHERE flow_number = $1"
# One statement, autocommit: lock the oldest unleased available job nobody else is locking, lease it.
# $1 now, $2 worker_id, $3 lease_expires_at
CLAIM = """
WITH next AS (
    SELECT id FROM jobs
    WHERE lease_owner IS NULL AND available_at <= $1
    ORDER BY available_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET lease_owner = $2, lease_expires_at = $3
FROM next, flows f
WHERE j.id = next.id AND f.flow_number = j.flow_number
RETURNING j.flow_number, j.attempts, f.status, f.blob_key,
          (SELECT c.content FROM flow_contents c WHERE c.flow_number = j.flow_number) AS content
"""
# $1 flow_number, $2 worker_id, $3 lease_expires_at
HEARTBEAT = "UPDATE jobs SET lease_expires_at = $3 WHERE flow_number = $1 AND lease_owner = $2"
RELEASE = """
UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE flow_number = $1 AND lease_owner = $2
"""
# $1 expired before. SKIP LOCKED: two daemons recovering at once never count one expiry twice.
EXPIRED_LEASES = """
SELECT j.flow_number, j.attempts, f.status
FROM jobs j JOIN flows f ON f.flow_number = j.flow_number
WHERE j.lease_owner IS NOT NULL AND j.lease_expires_at < $1
ORDER BY j.id
FOR UPDATE OF j SKIP LOCKED
"""
# $1 flow_number, $2 attempts
CLEAR_EXPIRED_LEASE = """
UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, attempts = $2 WHERE flow_number = $1
"""
QUEUE_DEPTH = "SELECT count(*) FROM jobs"
FLOW_COUNTER_KEY = "SELECT issuer_siret, deposited_at, syntax FROM flows WHERE flow_number = $1"
# $1 flow_number: the flow's error findings being replaced (their counts go down).
DELETE_FINDINGS_RETURNING = """
DELETE FROM findings WHERE flow_number = $1 RETURNING code, rule, severity
"""
LATEST_CURSOR = "SELECT last_cursor FROM feed_counter WHERE id = 1"
