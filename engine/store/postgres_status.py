"""Status changes for ``PostgresStore``, inside the caller's write transaction (``postgres_db.Tx``): the
compare-and-set update, its hash-chained event, the job row that follows the status, counter deltas, and
the end-of-transaction ``commit`` that writes counters and events, events in commit order.

Commit-ordered feed: a plain sequence is not commit order (a transaction may take cursor 7, another 8,
and 8 commit first: a reader resuming after 8 would miss 7 forever). So cursors come from the single row
``feed_counter``, updated by ``fluxdepot_flush()`` (migration 0003) sent together with ``COMMIT`` in
one message: its row lock serialises the appending transactions from that call to their commit, and a
transaction's commit is visible before the next one gets its cursor. Cursors therefore grow in commit
order across every daemon, with no gaps. The cost is that event-appending commits are serialised, but
only for the server-side call and the commit itself, never a client round trip; ``pg_notify`` on
``fluxdepot_events`` rides in the same call and is delivered at commit.

Invariants (as on SQLite): a status changes only from the expected one (no row → ``StatusConflict``),
along ``engine.status.advance``; every change appends event ``seq + 1`` whose ``prev_hash`` is the
previous event's hash (``GENESIS`` for seq 1), hashing ``at.isoformat()`` of the UTC datetime; a flow
has a job row exactly while its status is in ``JOB_STATUSES``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.audit import GENESIS, event_hash
from engine.errors import FlowNotFound, StatusConflict
from engine.model import Finding, FlowRecord, Severity
from engine.status import FlowEvent, FlowStatus, advance, events_of
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
    event: FlowEvent | Sequence[FlowEvent],
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> FlowRecord:
    """Compare-and-set the status along ``walk(expected, events)`` in ONE update; append one event per
    step; the job follows the final status. Returns the flow as updated.

    The update locks the flow row until commit: a concurrent change of the same flow waits, then finds
    the new status and conflicts.
    """
    events = events_of(event)
    statuses = list(itertools.accumulate(events, advance, initial=expected))[1:]  # after each step
    final = statuses[-1]
    at_utc = utc(at)
    row = await tx.conn.fetchrow(sql.SET_STATUS, flow_number, expected.code, final.code, at_utc)
    if row is None:
        actual = await tx.conn.fetchval(sql.GET_STATUS, flow_number)
        raise StatusConflict(flow_number, expected.name, FlowStatus(actual).name if actual else None)
    issuer, syntax, deposited_at = str(row["issuer_siret"]), str(row["syntax"]), row["deposited_at"]
    tx.counts.flow(issuer, deposited_at, syntax, expected.code, -1)
    tx.counts.flow(issuer, deposited_at, syntax, final.code, +1)
    for step, status in zip(events, statuses, strict=True):
        await append_event(tx, flow_number, status, step, at=at_utc, actor=actor, detail=detail)
    if final in JOB_STATUSES:
        if expected not in JOB_STATUSES:  # else the job is there already (and kept, as SQLite does)
            # Recreated on ADMIN_RELEASE / ADMIN_REPROCESS (and NOTIFY the workers).
            await tx.conn.execute(sql.ENSURE_JOB, flow_number, at_utc)
    elif expected in JOB_STATUSES:  # else there is no job to delete
        await tx.conn.execute(sql.DELETE_JOB, flow_number)
    return flow_from_row(row)


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
    """Compute the flow's next hash-chained event; ``commit`` writes it with its cursor."""
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


async def commit(tx: Tx) -> None:
    """End the write transaction: stage the counter deltas and events (no lock taken), then ONE message
    runs ``fluxdepot_flush()`` (counters, then the events under the feed counter's lock, migration 0003)
    and ``COMMIT``, so no hot row stays locked across a round trip to this process."""
    body = counters.payload(tx.counts)
    body["ev"] = [
        [e.flow_number, e.seq, e.status, e.event, e.at.isoformat(), e.actor, e.detail, e.prev_hash, e.hash]
        for e in tx.events
    ]
    if any(body.values()):
        await tx.conn.execute(sql.STAGE_FLUSH, json.dumps(body, separators=(",", ":")))
        await tx.conn.execute(sql.FLUSH_AND_COMMIT)
    else:
        await tx.conn.execute("COMMIT")
