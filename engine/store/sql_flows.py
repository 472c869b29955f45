"""The SQL of flows, their status events, verdicts, the work queue and the outbox, for both dialects.

Reads are shared (``engine.store.flow_reads``); each backend runs the writes its own way (``sqlite``,
``sqlite_status``, ``sqlite_flow_writer``; ``postgres``, ``postgres_status``), so a write statement one
dialect does not run has ``None`` there. Lists: a JSON array read with ``json_each`` on SQLite, an array
on PostgreSQL. Every text has named parameters (``engine.store.sql``).
"""

from __future__ import annotations

from engine.store.sql import Predicate, Statement, Where, both, per_dialect

WORK_CHANNEL = "fluxdepot_work"  # PostgreSQL NOTIFY after a job is (re)created: idle workers claim
EVENTS_CHANNEL = "fluxdepot_events"  # PostgreSQL NOTIFY with the last cursor after status events are appended

# --- flows ---------------------------------------------------------------------------------------
FLOWS = """
SELECT flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
       deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
       invoice_count, integrated_count, rejected_count, return_flows
FROM flows"""  # every column of a FlowRecord
_RETURNING_FLOW = """
RETURNING flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
          deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
          invoice_count, integrated_count, rejected_count, return_flows"""
_FLOW_NUMBER = Predicate("flow_number = :flow_number")
GET_FLOW = both(Where(FLOWS, (_FLOW_NUMBER,)))
FIND_BY_TRACKING_ID = both(Where(FLOWS, (Predicate("depositor = :depositor"), Predicate("tracking_id = :tracking_id"))))
# A flow by what its deposit carried (SQLite: the deposits' writer died before answering; committed?).
FIND_DEPOSITED = Statement(
    sqlite=Where(
        FLOWS,
        (
            Predicate("depositor = :depositor"),
            Predicate("issuer_siret = :issuer_siret"),
            Predicate("deposited_at = :deposited_at"),
            Predicate("sha256 = :sha256"),
            Predicate("file_name = :file_name"),
        ),
    ),
    postgres=None,
)
GET_STATUS = both("SELECT status FROM flows WHERE flow_number = :flow_number")
GET_BLOB_KEY = both("SELECT blob_key FROM flows WHERE flow_number = :flow_number")
GET_CONTENT = both("SELECT content FROM flow_contents WHERE flow_number = :flow_number")
ALL_FLOW_NUMBERS = both("SELECT flow_number FROM flows ORDER BY seq")

# PostgreSQL inserts one flow per transaction (SQLite's deposits' writer inserts batches, in its module).
NEXT_FLOW_SEQ = Statement(sqlite=None, postgres="SELECT nextval('flow_seq')")
INSERT_FLOW = Statement(
    sqlite=None,
    postgres="""
INSERT INTO flows (
    seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
    deposited_at, status_changed_at, sha256, size_bytes, blob_key, tracking_id, partner_code
) VALUES (
    :seq, :flow_number, :file_name, :syntax, :declared_syntax, :channel, :issuer_siret, :depositor, :status,
    :deposited_at, :deposited_at, :sha256, :size_bytes, :blob_key, :tracking_id, :partner_code
)
RETURNING flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
          deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
          invoice_count, integrated_count, rejected_count, return_flows""",
)
INSERT_CONTENT = Statement(
    sqlite=None, postgres="INSERT INTO flow_contents (flow_number, content) VALUES (:flow_number, :content)"
)

# Compare-and-set: no row changed means the flow is not (or no longer) in the expected status.
# PostgreSQL returns the flow (its counters need the issuer, day and syntax); SQLite re-reads it at the end.
_SET_STATUS = "UPDATE flows SET status = :new_status, status_changed_at = :at"
_CAS = (_FLOW_NUMBER, Predicate("status = :expected"))
SET_STATUS = Statement(sqlite=Where(_SET_STATUS, _CAS), postgres=Where(_SET_STATUS, _CAS, _RETURNING_FLOW))
_SET_VERDICT_COUNTS = """
UPDATE flows
SET invoice_count = :invoice_count, integrated_count = :integrated_count, rejected_count = :rejected_count,
    ruleset_version = :ruleset_version"""
SET_VERDICT_COUNTS = Statement(
    sqlite=Where(_SET_VERDICT_COUNTS, (_FLOW_NUMBER,)),
    postgres=Where(_SET_VERDICT_COUNTS, (_FLOW_NUMBER,), _RETURNING_FLOW),
)
FLOW_COUNTER_KEY = Statement(
    sqlite=None, postgres="SELECT issuer_siret, deposited_at, syntax FROM flows WHERE flow_number = :flow_number"
)

# A return flow's name, appended once; naming the integration report (FSO…_<flow number>.xml) marks the
# report written (migration 0006). PostgreSQL answers whether the flow exists; SQLite asks FLOW_EXISTS.
ADD_RETURN_FLOW = Statement(
    sqlite="""
UPDATE flows
SET return_flows = json_insert(return_flows, '$[#]', :name),
    report_written = report_written OR :name GLOB ('FSO*_' || flow_number || '.xml')
WHERE flow_number = :flow_number
  AND NOT EXISTS (SELECT 1 FROM json_each(flows.return_flows) WHERE json_each.value = :name)
""",
    postgres="""
WITH upd AS (
    UPDATE flows
    SET return_flows = array_append(return_flows, :name::text),
        report_written = report_written
                         OR (:name::text LIKE 'FSO%' AND :name::text LIKE '%\\_' || flow_number || '.xml')
    WHERE flow_number = :flow_number AND NOT (:name::text = ANY (return_flows))
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM flows WHERE flow_number = :flow_number)
""",
)
FLOW_EXISTS = both("SELECT EXISTS (SELECT 1 FROM flows WHERE flow_number = :flow_number)")

# --- status events ---------------------------------------------------------------------------------
LAST_EVENT = both("SELECT seq, hash FROM status_events WHERE flow_number = :flow_number ORDER BY seq DESC LIMIT 1")
# SQLite inserts a flow's events in one multi-row statement (sqlite_status.INSERT_EVENTS); PostgreSQL's
# events go with the commit (postgres_status.commit).
STAGE_FLUSH = Statement(sqlite=None, postgres="SELECT set_config('fluxdepot.flush', :payload, true)")
FLUSH_AND_COMMIT = Statement(sqlite=None, postgres="SELECT fluxdepot_flush(); COMMIT")  # migration 0003
LATEST_CURSOR = Statement(  # SQLite: the AUTOINCREMENT high-water mark, which survives deletes of feed rows
    sqlite="SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'event_feed'), 0)",
    postgres="SELECT last_cursor FROM feed_counter WHERE id = 1",
)

# --- invoices and findings -------------------------------------------------------------------------
DELETE_INVOICES = both("DELETE FROM invoices WHERE flow_number = :flow_number")
# PostgreSQL takes the deleted error findings off its counters (SQLite's triggers do).
DELETE_FINDINGS = Statement(
    sqlite="DELETE FROM findings WHERE flow_number = :flow_number",
    postgres="DELETE FROM findings WHERE flow_number = :flow_number RETURNING code, rule, severity",
)
# PostgreSQL copies invoices and findings in (COPY: postgres.INVOICE_COLUMNS, FINDING_COLUMNS).
INSERT_INVOICE = Statement(
    sqlite="""
INSERT INTO invoices (
    flow_number, idx, document, number, type_code, issue_date, issue_year, currency, supplier_id,
    supplier_name, buyer_id, buyer_name, service_code, engagement_number, total_without_vat,
    total_with_vat, amount_due, guideline, has_attachment, status
) VALUES (
    :flow_number, :idx, :document, :number, :type_code, :issue_date, :issue_year, :currency, :supplier_id,
    :supplier_name, :buyer_id, :buyer_name, :service_code, :engagement_number, :total_without_vat,
    :total_with_vat, :amount_due, :guideline, :has_attachment, :status
)
""",
    postgres=None,
)
NEXT_FINDING_POSITION = both("SELECT COALESCE(MAX(position) + 1, 0) FROM findings WHERE flow_number = :flow_number")
# The oldest flow that integrated each (year, number) of one supplier: SQLite reads the pairs as one JSON
# array (:keys), PostgreSQL as two parallel arrays (:years, :numbers).
_INTEGRATED_HEAD = """
SELECT i.issue_year, i.number, i.flow_number
FROM invoices i JOIN flows fl ON fl.flow_number = i.flow_number"""
_INTEGRATED = (Predicate("i.supplier_id = :supplier_id"), Predicate("i.status = 'integrated'"))
INTEGRATED_INVOICE_FLOWS = Statement(
    sqlite=Where(
        _INTEGRATED_HEAD,
        (
            *_INTEGRATED,
            Predicate("""(i.issue_year, i.number) IN (
      SELECT json_extract(k.value, '$[0]'), json_extract(k.value, '$[1]') FROM json_each(:keys) AS k
  )"""),
        ),
        "\nORDER BY fl.seq, i.idx",
    ),
    postgres=Where(
        _INTEGRATED_HEAD,
        (
            *_INTEGRATED,
            Predicate("(i.issue_year, i.number) IN (SELECT * FROM unnest(:years::text[], :numbers::text[]))"),
        ),
        "\nORDER BY fl.seq, i.idx",
    ),
)

# --- what reports are built from, for many flows at once (:numbers); a one-flow read asks for one -------
# Each orders by flow number, then seq / position / invoice idx (engine.store.report_rows groups them).
_IN_NUMBERS_SQLITE = Predicate("flow_number IN (SELECT value FROM json_each(:numbers))")
_IN_NUMBERS_POSTGRES = Predicate("flow_number = ANY (:numbers::text[])")
_VERSIONS = "SELECT flow_number, ruleset_version FROM flows"
REPORT_VERSIONS = per_dialect(_VERSIONS, (_IN_NUMBERS_SQLITE,), (_IN_NUMBERS_POSTGRES,))
_HISTORY = "SELECT flow_number, seq, status, event, at, actor, detail, prev_hash, hash FROM status_events"
_HISTORY_ORDER = "\nORDER BY flow_number, seq"
REPORT_HISTORY = per_dialect(_HISTORY, (_IN_NUMBERS_SQLITE,), (_IN_NUMBERS_POSTGRES,), _HISTORY_ORDER)
_FINDINGS = "SELECT flow_number, code, message, severity, rule, business_term, location, document FROM findings"
_FLOW_LEVEL = Predicate("invoice_idx IS NULL")
_FINDINGS_ORDER = "\nORDER BY flow_number, position"
REPORT_FLOW_FINDINGS = per_dialect(
    _FINDINGS, (_IN_NUMBERS_SQLITE, _FLOW_LEVEL), (_IN_NUMBERS_POSTGRES, _FLOW_LEVEL), _FINDINGS_ORDER
)
# One statement, so an invoice and its findings are read from the same snapshot.
_INVOICES = """
SELECT i.flow_number, i.idx, i.document, i.number, i.type_code, i.issue_date, i.currency, i.supplier_id,
       i.supplier_name, i.buyer_id, i.buyer_name, i.service_code, i.engagement_number, i.total_without_vat,
       i.total_with_vat, i.amount_due, i.guideline, i.has_attachment, i.status AS invoice_status,
       f.code AS f_code, f.message AS f_message, f.severity AS f_severity, f.rule AS f_rule,
       f.business_term AS f_business_term, f.location AS f_location, f.document AS f_document
FROM invoices i
LEFT JOIN findings f ON f.flow_number = i.flow_number AND f.invoice_idx = i.idx"""
_INVOICES_ORDER = "\nORDER BY i.flow_number, i.idx, f.position"
REPORT_INVOICES = per_dialect(
    _INVOICES,
    (Predicate("i.flow_number IN (SELECT value FROM json_each(:numbers))"),),
    (Predicate("i.flow_number = ANY (:numbers::text[])"),),
    _INVOICES_ORDER,
)

# --- the outbox: EDI flows in a final status whose integration report is not written --------------------
# The terms are those of the partial index of migration 0006, constants included (a planner uses a partial
# index only when the query's terms imply its own); the list is engine.status.FINAL_STATUSES. SQLite names
# the index: should the terms stop matching it, the query fails instead of scanning.
PENDING_RETURN_FLOWS = Statement(
    sqlite="""
SELECT flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
       deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
       invoice_count, integrated_count, rejected_count, return_flows
FROM flows INDEXED BY flows_report_pending
WHERE channel = 'EDI' AND partner_code IS NOT NULL AND report_written = 0
      AND status IN ('IN_INCIDENTE', 'IN_INTEGRE', 'IN_INTEGRE_PARTIEL', 'IN_REJETE')
ORDER BY seq
LIMIT :limit
""",
    postgres=Where(
        FLOWS,
        (
            Predicate("channel = 'EDI' AND partner_code IS NOT NULL AND NOT report_written"),
            Predicate("status IN ('IN_INCIDENTE', 'IN_INTEGRE', 'IN_INTEGRE_PARTIEL', 'IN_REJETE')"),
        ),
        "\nORDER BY seq\nLIMIT :limit",
    ),
)

# --- work queue ------------------------------------------------------------------------------------
# PostgreSQL NOTIFYs idle workers when a job was created (delivered at COMMIT).
ENSURE_JOB = Statement(
    sqlite="""
INSERT INTO jobs (flow_number, available_at, attempts) VALUES (:flow_number, :available_at, 0)
ON CONFLICT (flow_number) DO NOTHING
""",
    postgres="""
WITH created AS (
    INSERT INTO jobs (flow_number, available_at, attempts) VALUES (:flow_number, :available_at, 0)
    ON CONFLICT (flow_number) DO NOTHING
    RETURNING 1
)
SELECT pg_notify('fluxdepot_work', '') FROM created
""",
)
DELETE_JOB = both("DELETE FROM jobs WHERE flow_number = :flow_number")
QUEUE_DEPTH = both("SELECT count(*) FROM jobs")
# SQLite: a look on the reader, then the lease in a write transaction (one writer: nobody races it).
ANY_CLAIMABLE = Statement(
    sqlite="SELECT 1 FROM jobs WHERE lease_owner IS NULL AND available_at <= :now LIMIT 1", postgres=None
)
NEXT_CLAIMABLE = Statement(
    sqlite="""
SELECT j.flow_number, j.attempts, f.status, f.blob_key,
       (SELECT c.content FROM flow_contents c WHERE c.flow_number = j.flow_number) AS content
FROM jobs j JOIN flows f ON f.flow_number = j.flow_number
WHERE j.lease_owner IS NULL AND j.available_at <= :now
ORDER BY j.available_at, j.id
LIMIT 1
""",
    postgres=None,
)
LEASE_JOB = Statement(
    sqlite="""
UPDATE jobs SET lease_owner = :worker_id, lease_expires_at = :lease_expires_at
WHERE flow_number = :flow_number AND lease_owner IS NULL
""",
    postgres=None,
)
# PostgreSQL: one autocommit statement locks the oldest unleased available job nobody else is locking.
CLAIM = Statement(
    sqlite=None,
    postgres="""
WITH next AS (
    SELECT id FROM jobs
    WHERE lease_owner IS NULL AND available_at <= :now
    ORDER BY available_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET lease_owner = :worker_id, lease_expires_at = :lease_expires_at
FROM next, flows f
WHERE j.id = next.id AND f.flow_number = j.flow_number
RETURNING j.flow_number, j.attempts, f.status, f.blob_key,
          (SELECT c.content FROM flow_contents c WHERE c.flow_number = j.flow_number) AS content
""",
)
HEARTBEAT = both("""
UPDATE jobs SET lease_expires_at = :lease_expires_at
WHERE flow_number = :flow_number AND lease_owner = :worker_id
""")
RELEASE = both("""
UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
WHERE flow_number = :flow_number AND lease_owner = :worker_id
""")
# PostgreSQL skips locked rows: two daemons recovering at once never count one expiry twice.
_EXPIRED = """
SELECT j.flow_number, j.attempts, f.status FROM jobs j JOIN flows f ON f.flow_number = j.flow_number"""
_EXPIRED_TERMS = (Predicate("j.lease_owner IS NOT NULL"), Predicate("j.lease_expires_at < :now"))
EXPIRED_LEASES = Statement(
    sqlite=Where(_EXPIRED, _EXPIRED_TERMS, "\nORDER BY j.id"),
    postgres=Where(_EXPIRED, _EXPIRED_TERMS, "\nORDER BY j.id\nFOR UPDATE OF j SKIP LOCKED"),
)
CLEAR_EXPIRED_LEASE = both("""
UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, attempts = :attempts
WHERE flow_number = :flow_number
""")
