"""Status changes for ``PostgresStore``, inside the caller's write transaction (``postgres_db.Tx``): the
compare-and-set update, its hash-chained event, the job row that follows the status, counter deltas, and
the end-of-transaction ``flush`` that writes events in commit order.

Commit-ordered feed: a plain sequence is not commit order (a transaction may take cursor 7, another 8,
and 8 commit first: a reader resuming after 8 would miss 7 forever). So cursors come from the single row
``feed_counter``, updated by ``flush`` as the last statement before ``COMMIT``: its row lock serialises
the appending transactions from that statement to their commit, and a transaction's commit is visible
before the next one gets its cursor. Cursors therefore grow in commit order across every daemon, with
no gaps. The cost is that event-appending commits are serialised (one at a time, each holding the lock
for one statement plus its commit); ``pg_notify`` on ``fluxdepot_events`` rides in the same statement and
is delivered at commit.

Invariants (as on SQLite): a status changes only from the expected one (no row → ``StatusConflict``),
along ``engine.status.advance``; every change appends event ``seq + 1`` whose ``prev_hash`` is the
previous event's hash (``GENESIS`` for seq 1), hashing ``at.isoformat()`` of the UTC datetime; a flow
has a job row exactly while its status is in ``JOB_STATUSES``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.audit import GENESIS, event_hash
from engine.errors import FlowNotFound, StatusConflict
from engine.model import Finding, FlowRecord, Severity
from engine.status import FlowEvent, FlowStatus, advance
from engine.store import postgres_counters as counters
from engine.store import postgres_sql as sql
from engine.store.postgres_db import PendingEvent, Tx
from engine.store.postgres_rows import finding_record, flow_from_row, utc

S = FlowStatus

JOB_STATUSES = frozenset({S.RECEIVED, S.PROCESSED_SE_CPP, S.WAITING_FOR_PROCESSING, S.IN_PROGRESS})


async def read_flow(conn: Any, flow_number: str) -> FlowRecord:
    row = await conn.fetchrow(sql.GET_FLOW, flow_number)
    if row is None:
        raise FlowNotFound(flow_number)
    return flow_from_row(row)


async def set_status(
    tx: Tx,
    flow_number: str,
    expected: FlowStatus,
    event: FlowEvent,
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> FlowStatus:
    """Compare-and-set the status along ``advance(expected, event)``; append the event; the job follows.

    The update locks the flow row until commit: a concurrent change of the same flow waits, then finds
    the new status and conflicts.
    """
    new_status = advance(expected, event)
    at_utc = utc(at)
    row = await tx.conn.fetchrow(sql.SET_STATUS, flow_number, expected.code, new_status.code, at_utc)
    if row is None:
        actual = await tx.conn.fetchval(sql.GET_STATUS, flow_number)
        raise StatusConflict(flow_number, expected.name, FlowStatus(actual).name if actual else None)
    issuer, syntax, deposited_at = str(row["issuer_siret"]), str(row["syntax"]), row["deposited_at"]
    tx.counts.flow(issuer, deposited_at, syntax, expected.code, -1)
    tx.counts.flow(issuer, deposited_at, syntax, new_status.code, +1)
    await append_event(tx, flow_number, new_status, event, at=at_utc, actor=actor, detail=detail)
    if new_status in JOB_STATUSES:
        # Recreated on ADMIN_RELEASE / ADMIN_REPROCESS (and NOTIFY the workers); a no-op otherwise.
        await tx.conn.execute(sql.ENSURE_JOB, flow_number, at_utc)
    else:
        await tx.conn.execute(sql.DELETE_JOB, flow_number)
    return new_status


async def append_event(
    tx: Tx,
    flow_number: str,
    status: FlowStatus,
    event: FlowEvent | None,
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> None:
    """Compute the flow's next hash-chained event; ``flush`` writes it with its cursor."""
    pending = tx.last_pending(flow_number)
    if pending is not None:
        seq, prev_hash = pending.seq + 1, pending.hash
    elif event is None:
        seq, prev_hash = 1, GENESIS  # the creating event of a flow inserted in this transaction
    else:
        last = await tx.conn.fetchrow(sql.LAST_EVENT, flow_number)
        seq, prev_hash = (int(last["seq"]) + 1, str(last["hash"])) if last else (1, GENESIS)
    at_utc = utc(at)
    event_value = event.value if event else ""
    digest = event_hash(prev_hash, flow_number, seq, status.code, event_value, at_utc.isoformat(), actor, detail)
    tx.events.append(
        PendingEvent(
            flow_number,
            seq,
            status.code,
            event.value if event else None,
            at_utc,
            actor,
            detail,
            prev_hash,
            digest,
        )
    )


async def add_flow_finding(tx: Tx, flow_number: str, finding: Finding) -> None:
    """Append a flow-level finding after the flow's existing ones (counted when it is an error)."""
    position = int(await tx.conn.fetchval(sql.NEXT_FINDING_POSITION, flow_number))
    await insert_findings(tx, [finding_record(flow_number, None, position, finding)])
    if finding.severity is Severity.ERROR:
        row = await tx.conn.fetchrow(sql.FLOW_COUNTER_KEY, flow_number)
        tx.counts.error(
            str(row["issuer_siret"]), row["deposited_at"], str(row["syntax"]), finding.code, finding.rule, +1
        )


async def insert_findings(tx: Tx, records: list[tuple[Any, ...]]) -> None:
    if records:
        await tx.conn.copy_records_to_table("findings", records=records, columns=sql.FINDING_COLUMNS)


async def flush(tx: Tx) -> None:
    """The end of a write transaction: counter deltas, then the events under the feed counter's lock."""
    await counters.apply(tx.conn, tx.counts)
    if tx.events:
        evs = tx.events
        await tx.conn.execute(
            sql.APPEND_EVENTS,
            [e.flow_number for e in evs],
            [e.seq for e in evs],
            [e.status for e in evs],
            [e.event for e in evs],
            [e.at for e in evs],
            [e.actor for e in evs],
            [e.detail for e in evs],
            [e.prev_hash for e in evs],
            [e.hash for e in evs],
        )
