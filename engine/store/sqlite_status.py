"""Status changes for ``SqliteStore``, run inside the caller's write transaction: the compare-and-set
update, its hash-chained event and the job row that follows the status. Plain ``sqlite3`` calls: the
store runs a whole transaction in its writer thread (``sqlite_db.ThreadConnection``).

Invariants: a status changes only from the expected one (zero rows updated → ``StatusConflict``), along
``engine.status.advance``; every change appends event ``seq + 1`` whose ``prev_hash`` is the previous
event's hash (``GENESIS`` for seq 1) and whose hash covers ``at.isoformat()`` of the UTC datetime, exactly
what ``history()`` gives back; a flow has a job row exactly while its status is in ``JOB_STATUSES``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.audit import GENESIS, event_hash
from engine.errors import FlowNotFound, StatusConflict
from engine.model import Finding, FlowRecord
from engine.status import FlowEvent, FlowStatus, advance
from engine.store import sqlite_sql as sql
from engine.store.sqlite_rows import finding_params, flow_from_row, to_db_time, utc

S = FlowStatus

JOB_STATUSES = frozenset({S.RECEIVED, S.PROCESSED_SE_CPP, S.WAITING_FOR_PROCESSING, S.IN_PROGRESS})


def read_flow(conn: sqlite3.Connection, flow_number: str) -> FlowRecord:
    rows = conn.execute(sql.GET_FLOW, {"flow_number": flow_number}).fetchall()
    if not rows:
        raise FlowNotFound(flow_number)
    return flow_from_row(rows[0])


def set_status(
    conn: sqlite3.Connection,
    flow_number: str,
    expected: FlowStatus,
    event: FlowEvent,
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> FlowStatus:
    """Compare-and-set the status along ``advance(expected, event)``; append the event; the job follows."""
    new_status = advance(expected, event)
    at_db = to_db_time(at)
    params = {
        "flow_number": flow_number,
        "expected": expected.code,
        "new_status": new_status.code,
        "at": at_db,
    }
    cursor = conn.execute(sql.SET_STATUS, params)
    if cursor.rowcount != 1:
        rows = conn.execute(sql.GET_STATUS, {"flow_number": flow_number}).fetchall()
        actual = FlowStatus(rows[0][0]).name if rows else None
        raise StatusConflict(flow_number, expected.name, actual)
    append_event(conn, flow_number, new_status, event, at=at, actor=actor, detail=detail)
    if new_status in JOB_STATUSES:
        # Recreated on ADMIN_RELEASE / ADMIN_REPROCESS; a no-op while the flow already has its job.
        conn.execute(sql.ENSURE_JOB, {"flow_number": flow_number, "available_at": at_db})
    else:
        conn.execute(sql.DELETE_JOB, {"flow_number": flow_number})
    return new_status


def set_statuses(
    conn: sqlite3.Connection,
    flow_number: str,
    expected: FlowStatus,
    events: Sequence[FlowEvent],
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> FlowStatus:
    """``set_status`` for each of ``events`` in order, in a constant number of statements: one
    compare-and-set from ``expected`` to the last status (nothing else sees the ones between inside
    the transaction), the chained events in one ``executemany``, the job as the last status wants."""
    if len(events) == 1:
        return set_status(conn, flow_number, expected, events[0], at=at, actor=actor, detail=detail)
    statuses = []
    status = expected
    for event in events:
        status = advance(status, event)
        statuses.append(status)
    at_db = to_db_time(at)
    params = {"flow_number": flow_number, "expected": expected.code, "new_status": status.code, "at": at_db}
    cursor = conn.execute(sql.SET_STATUS, params)
    if cursor.rowcount != 1:
        rows = conn.execute(sql.GET_STATUS, {"flow_number": flow_number}).fetchall()
        actual = FlowStatus(rows[0][0]).name if rows else None
        raise StatusConflict(flow_number, expected.name, actual)
    rows = conn.execute(sql.LAST_EVENT, {"flow_number": flow_number}).fetchall()
    seq, prev_hash = (int(rows[0]["seq"]), str(rows[0]["hash"])) if rows else (0, GENESIS)
    chained = []
    for step_status, event in zip(statuses, events, strict=True):
        seq += 1
        chained.append(_event_params(flow_number, seq, prev_hash, step_status, event, at, actor, detail))
        prev_hash = chained[-1]["hash"]
    conn.executemany(sql.INSERT_EVENT, chained)
    if status in JOB_STATUSES:
        conn.execute(sql.ENSURE_JOB, {"flow_number": flow_number, "available_at": at_db})
    else:
        conn.execute(sql.DELETE_JOB, {"flow_number": flow_number})
    return status


def _event_params(
    flow_number: str,
    seq: int,
    prev_hash: str,
    status: FlowStatus,
    event: FlowEvent | None,
    at: datetime,
    actor: str,
    detail: str | None,
) -> dict[str, Any]:
    """The row of event ``seq``, hash-chained to ``prev_hash``."""
    at_utc = utc(at)
    digest = event_hash(
        prev_hash,
        flow_number,
        seq,
        status.code,
        event.value if event else "",
        at_utc.isoformat(),
        actor,
        detail,
    )
    return {
        "flow_number": flow_number,
        "seq": seq,
        "status": status.code,
        "event": event.value if event else None,
        "at": to_db_time(at_utc),
        "actor": actor,
        "detail": detail,
        "prev_hash": prev_hash,
        "hash": digest,
    }


def append_event(
    conn: sqlite3.Connection,
    flow_number: str,
    status: FlowStatus,
    event: FlowEvent | None,
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> None:
    """Append the flow's next hash-chained event."""
    rows = conn.execute(sql.LAST_EVENT, {"flow_number": flow_number}).fetchall()
    seq, prev_hash = (int(rows[0]["seq"]) + 1, str(rows[0]["hash"])) if rows else (1, GENESIS)
    at_utc = utc(at)
    event_value = event.value if event else ""
    digest = event_hash(prev_hash, flow_number, seq, status.code, event_value, at_utc.isoformat(), actor, detail)
    conn.execute(
        sql.INSERT_EVENT,
        {
            "flow_number": flow_number,
            "seq": seq,
            "status": status.code,
            "event": event.value if event else None,
            "at": to_db_time(at_utc),
            "actor": actor,
            "detail": detail,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )


def add_flow_finding(conn: sqlite3.Connection, flow_number: str, finding: Finding) -> None:
    """Append a flow-level finding after the flow's existing ones."""
    rows = conn.execute(sql.NEXT_FINDING_POSITION, {"flow_number": flow_number}).fetchall()
    conn.execute(sql.INSERT_FINDING, finding_params(flow_number, None, int(rows[0][0]), finding))
