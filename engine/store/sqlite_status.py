"""Status changes for ``SqliteStore``, inside the flows' writer thread's transaction (``SqliteSync``): the
compare-and-set update, its hash-chained events (``engine.store.writes.chain``) and the job row that
follows the status, in a constant number of statements however many events.

Invariants: a status changes only from the expected one (zero rows updated → ``StatusConflict``), along
``engine.status.advance``; every step appends the next chained event; a flow has a job row exactly while
its status is in ``JOB_STATUSES``.
"""

from __future__ import annotations

from engine.errors import FlowNotFound, StatusConflict
from engine.model import Finding, FlowRecord
from engine.status import FlowStatus
from engine.store import sql_flows as sql
from engine.store.rows import finding_values
from engine.store.sqlite_database import READER, SqliteSync, encode, to_db_time
from engine.store.sqlite_db import insert_rows
from engine.store.writes import JOB_STATUSES, Change, chain

# Multi-row inserts (``sqlite_db.insert_rows``): a flow's events (here and in the deposits' writer), its
# verdict's findings, one statement step each.
INSERT_EVENTS = """INSERT INTO status_events (flow_number, seq, status, event, at, actor, detail, prev_hash, hash)
VALUES """
EVENT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_FINDINGS = """INSERT INTO findings (
    flow_number, invoice_idx, position, code, message, severity, rule, business_term, location, document
) VALUES """
_FINDING_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def read_flow(db: SqliteSync, flow_number: str) -> FlowRecord:
    rows = db.rows(sql.GET_FLOW, {"flow_number": flow_number})
    if not rows:
        raise FlowNotFound(flow_number)
    return READER.flow(rows[0])


def set_statuses(db: SqliteSync, change: Change) -> FlowStatus:
    """Apply ``change``: one compare-and-set to its last status (nothing else sees the ones between
    inside the transaction), the chained events in one multi-row insert, the job as the last status
    wants. Returns that status."""
    number, expected, at = change.flow_number, change.expected, change.at
    steps = change.steps()
    final = steps[-1][0]
    if (
        db.execute(
            sql.SET_STATUS, {"flow_number": number, "expected": expected.code, "new_status": final.code, "at": at}
        )
        != 1
    ):
        actual = db.value(sql.GET_STATUS, {"flow_number": number})
        raise StatusConflict(number, expected.name, FlowStatus(actual).name if actual else None)
    rows = db.rows(sql.LAST_EVENT, {"flow_number": number})
    last = (int(rows[0]["seq"]), str(rows[0]["hash"])) if rows else None
    chained = chain(number, last, steps, at=at, actor=change.actor, detail=change.detail)
    values = [v for e in chained for v in (*e[:4], to_db_time(e.at), *e[5:])]  # ``at`` as stored
    insert_rows(db.conn, INSERT_EVENTS, EVENT_ROW, values)
    if final in JOB_STATUSES:
        # Recreated on ADMIN_RELEASE / ADMIN_REPROCESS; a no-op while the flow already has its job.
        db.execute(sql.ENSURE_JOB, {"flow_number": number, "available_at": at})
    else:
        db.execute(sql.DELETE_JOB, {"flow_number": number})
    return final


def add_flow_finding(db: SqliteSync, flow_number: str, finding: Finding) -> None:
    """Append a flow-level finding after the flow's existing ones."""
    position = int(db.value(sql.NEXT_FINDING_POSITION, {"flow_number": flow_number}))
    insert_findings(db, [finding_values(flow_number, None, position, finding)])


def insert_findings(db: SqliteSync, rows: list[dict[str, object]]) -> None:
    """Findings (``rows.finding_values``, in its column order) in one multi-row insert."""
    insert_rows(db.conn, _INSERT_FINDINGS, _FINDING_ROW, [v for row in rows for v in encode(row).values()])
