"""The SQL ``SqliteStore`` runs for flows, events, verdicts and the work queue: constants, named parameters.

Nothing here is built from values (STYLE rule 4); SQLite-only syntax (``RETURNING`` on the sequence row,
``json_each``) stays in this module so a PostgreSQL implementation writes its own.
"""

from __future__ import annotations

import functools
from typing import Any

from engine.store.port import NewFlow

# --- bulk inserts of new flows (one statement per table and chunk; see sqlite_flow_writer._insert_many)
# The only statements built at run time: from a row count (never from a value) into "(?, ...), (?, ...)".
ROWS_PER_INSERT = 500  # x 16 columns stays far below SQLite's 32,766 bound parameters
_NEW_FLOW_COLUMNS = (
    "seq", "flow_number", "file_name", "syntax", "declared_syntax", "channel", "issuer_siret", "depositor",
    "status", "deposited_at", "status_changed_at", "sha256", "size_bytes", "blob_key", "tracking_id",
    "partner_code",
)  # fmt: skip
_NEW_EVENT_COLUMNS = ("flow_number", "seq", "status", "event", "at", "actor", "detail", "prev_hash", "hash")
FLOW_WIDTH, EVENT_WIDTH, JOB_WIDTH, CONTENT_WIDTH = len(_NEW_FLOW_COLUMNS), len(_NEW_EVENT_COLUMNS), 2, 2


def flow_values(seq: int, number: str, new: NewFlow, status: str, at: str) -> tuple[Any, ...]:
    """A new flow's values in ``insert_flows`` column order (``at``: its deposit time as stored)."""
    return (
        seq, number, new.file_name, new.syntax.value, int(new.declared_syntax), new.channel.value,
        new.issuer_siret, new.depositor, status, at, at, new.sha256, new.size_bytes, new.blob_key,
        new.tracking_id, new.partner_code,
    )  # fmt: skip


def _rows(width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


@functools.cache
def insert_flows(count: int) -> str:
    """INSERT of ``count`` flows; parameters: ``flow_values`` of each, one after the other."""
    return f"INSERT INTO flows ({', '.join(_NEW_FLOW_COLUMNS)}) VALUES {_rows(FLOW_WIDTH, count)}"  # noqa: S608


@functools.cache
def insert_events(count: int) -> str:
    """INSERT of ``count`` status events, parameters in ``_NEW_EVENT_COLUMNS`` order."""
    columns = ", ".join(_NEW_EVENT_COLUMNS)
    return f"INSERT INTO status_events ({columns}) VALUES {_rows(EVENT_WIDTH, count)}"  # noqa: S608


@functools.cache
def ensure_jobs(count: int) -> str:
    """Queue jobs for ``count`` flows: parameters (flow_number, available_at) of each."""
    rows = ", ".join(["(?, ?, 0)"] * count)
    return f"INSERT INTO jobs (flow_number, available_at, attempts) VALUES {rows} ON CONFLICT DO NOTHING"  # noqa: S608


@functools.cache
def insert_contents(count: int) -> str:
    """Keep the bytes of ``count`` flows: parameters (flow_number, content) of each."""
    return f"INSERT INTO flow_contents (flow_number, content) VALUES {_rows(CONTENT_WIDTH, count)}"  # noqa: S608


_FLOW_COLUMNS = """
SELECT flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
       deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
       invoice_count, integrated_count, rejected_count, return_flows
FROM flows
"""
FLOW_COLUMNS = _FLOW_COLUMNS  # "SELECT <every FlowRecord column> FROM flows" (sqlite_queries_sql)
GET_FLOW = _FLOW_COLUMNS + "WHERE flow_number = :flow_number"
FIND_BY_TRACKING_ID = _FLOW_COLUMNS + "WHERE depositor = :depositor AND tracking_id = :tracking_id"
# A flow by what its deposit carried (the deposits' writer died before answering: was it committed?).
FIND_DEPOSITED = _FLOW_COLUMNS + (
    "WHERE depositor = :depositor AND issuer_siret = :issuer_siret AND deposited_at = :deposited_at"
    " AND sha256 = :sha256 AND file_name = :file_name"
)

GET_STATUS = "SELECT status FROM flows WHERE flow_number = :flow_number"
GET_BLOB_KEY = "SELECT blob_key FROM flows WHERE flow_number = :flow_number"
GET_RULESET_VERSION = "SELECT ruleset_version FROM flows WHERE flow_number = :flow_number"
ALL_FLOW_NUMBERS = "SELECT flow_number FROM flows ORDER BY seq"

# Compare-and-set: zero rows means the flow is not (or no longer) in the expected status.
SET_STATUS = """
UPDATE flows SET status = :new_status, status_changed_at = :at
WHERE flow_number = :flow_number AND status = :expected
"""

SET_VERDICT_COUNTS = """
UPDATE flows
SET invoice_count = :invoice_count, integrated_count = :integrated_count, rejected_count = :rejected_count,
    ruleset_version = :ruleset_version
WHERE flow_number = :flow_number
"""

ADD_RETURN_FLOW = """
UPDATE flows
SET return_flows = json_insert(return_flows, '$[#]', :name),
    report_written = report_written OR :name GLOB ('FSO*_' || flow_number || '.xml')
WHERE flow_number = :flow_number
  AND NOT EXISTS (SELECT 1 FROM json_each(flows.return_flows) WHERE json_each.value = :name)
"""
FLOW_EXISTS = "SELECT 1 FROM flows WHERE flow_number = :flow_number"

# --- status events ---------------------------------------------------------------------------------
LAST_EVENT = """
SELECT seq, hash FROM status_events WHERE flow_number = :flow_number ORDER BY seq DESC LIMIT 1
"""
INSERT_EVENT = """
INSERT INTO status_events (flow_number, seq, status, event, at, actor, detail, prev_hash, hash)
VALUES (:flow_number, :seq, :status, :event, :at, :actor, :detail, :prev_hash, :hash)
"""
HISTORY = """
SELECT flow_number, seq, status, event, at, actor, detail, prev_hash, hash
FROM status_events WHERE flow_number = :flow_number ORDER BY seq
"""

# --- invoices and findings -------------------------------------------------------------------------
DELETE_INVOICES = "DELETE FROM invoices WHERE flow_number = :flow_number"
DELETE_FINDINGS = "DELETE FROM findings WHERE flow_number = :flow_number"
INSERT_INVOICE = """
INSERT INTO invoices (
    flow_number, idx, document, number, type_code, issue_date, issue_year, currency, supplier_id,
    supplier_name, buyer_id, buyer_name, service_code, engagement_number, total_without_vat,
    total_with_vat, amount_due, guideline, has_attachment, status
) VALUES (
    :flow_number, :idx, :document, :number, :type_code, :issue_date, :issue_year, :currency, :supplier_id,
    :supplier_name, :buyer_id, :buyer_name, :service_code, :engagement_number, :total_without_vat,
    :total_with_vat, :amount_due, :guideline, :has_attachment, :status
)
"""
INSERT_FINDING = """
INSERT INTO findings (
    flow_number, invoice_idx, position, code, message, severity, rule, business_term, location, document
) VALUES (
    :flow_number, :invoice_idx, :position, :code, :message, :severity, :rule, :business_term, :location,
    :document
)
"""
NEXT_FINDING_POSITION = "SELECT COALESCE(MAX(position) + 1, 0) FROM findings WHERE flow_number = :flow_number"
FLOW_FINDINGS = """
SELECT code, message, severity, rule, business_term, location, document
FROM findings WHERE flow_number = :flow_number AND invoice_idx IS NULL ORDER BY position
"""
# One statement, so an invoice and its findings are read from the same snapshot.
INVOICES_WITH_FINDINGS = """
SELECT i.idx, i.document, i.number, i.type_code, i.issue_date, i.currency, i.supplier_id, i.supplier_name,
       i.buyer_id, i.buyer_name, i.service_code, i.engagement_number, i.total_without_vat,
       i.total_with_vat, i.amount_due, i.guideline, i.has_attachment, i.status AS invoice_status,
       f.code AS f_code, f.message AS f_message, f.severity AS f_severity, f.rule AS f_rule,
       f.business_term AS f_business_term, f.location AS f_location, f.document AS f_document
FROM invoices i
LEFT JOIN findings f ON f.flow_number = i.flow_number AND f.invoice_idx = i.idx
WHERE i.flow_number = :flow_number
ORDER BY i.idx, f.position
"""
# :keys is a JSON array of [year, number] pairs; the oldest integrating flow comes first.
INTEGRATED_INVOICE_FLOWS = """
SELECT i.issue_year, i.number, i.flow_number
FROM invoices i JOIN flows fl ON fl.flow_number = i.flow_number
WHERE i.supplier_id = :supplier_id AND i.status = 'integrated'
  AND (i.issue_year, i.number) IN (
      SELECT json_extract(k.value, '$[0]'), json_extract(k.value, '$[1]') FROM json_each(:keys) AS k
  )
ORDER BY fl.seq, i.idx
"""

# --- work queue ------------------------------------------------------------------------------------
ENSURE_JOB = """
INSERT INTO jobs (flow_number, available_at, attempts) VALUES (:flow_number, :available_at, 0)
ON CONFLICT (flow_number) DO NOTHING
"""
DELETE_JOB = "DELETE FROM jobs WHERE flow_number = :flow_number"
ANY_CLAIMABLE = "SELECT 1 FROM jobs WHERE lease_owner IS NULL AND available_at <= :now LIMIT 1"
NEXT_CLAIMABLE = """
SELECT j.flow_number, j.attempts, f.status, f.blob_key,
       (SELECT c.content FROM flow_contents c WHERE c.flow_number = j.flow_number) AS content
FROM jobs j JOIN flows f ON f.flow_number = j.flow_number
WHERE j.lease_owner IS NULL AND j.available_at <= :now
ORDER BY j.available_at, j.id
LIMIT 1
"""
LEASE_JOB = """
UPDATE jobs SET lease_owner = :worker_id, lease_expires_at = :lease_expires_at
WHERE flow_number = :flow_number AND lease_owner IS NULL
"""
HEARTBEAT = """
UPDATE jobs SET lease_expires_at = :lease_expires_at
WHERE flow_number = :flow_number AND lease_owner = :worker_id
"""
RELEASE = """
UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
WHERE flow_number = :flow_number AND lease_owner = :worker_id
"""
EXPIRED_LEASES = """
SELECT j.flow_number, j.attempts, f.status
FROM jobs j JOIN flows f ON f.flow_number = j.flow_number
WHERE j.lease_owner IS NOT NULL AND j.lease_expires_at < :now
ORDER BY j.id
"""
CLEAR_EXPIRED_LEASE = """
UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, attempts = :attempts
WHERE flow_number = :flow_number
"""
QUEUE_DEPTH = "SELECT COUNT(*) FROM jobs"

# create_flow's group commit isolates a flow with a tracking id, whose insert may be refused alone.
SAVEPOINT_CREATE = "SAVEPOINT create_flow"
ROLLBACK_TO_CREATE = "ROLLBACK TO create_flow"
RELEASE_CREATE = "RELEASE create_flow"
# ... and writes every other flow of the batch with one statement per table.
RESERVE_SEQUENCES = """
UPDATE flow_sequence SET last_value = last_value + :count WHERE id = 1 RETURNING last_value
"""
