"""Status changes for ``PostgresStore``, inside the caller's write transaction (``postgres_db.PgTransaction``):
the compare-and-set update, its hash-chained events (``engine.store.writes.chain``), the job row that
follows the status, and the counter deltas; the transaction's ``commit`` writes counters and events.

Commit-ordered feed: a plain sequence is not commit order (a transaction may take cursor 7, another 8,
and 8 commit first: a reader resuming after 8 would miss 7 forever). So cursors come from the single row
``feed_counter``, updated by ``fluxdepot_flush()`` (migration 0003) sent together with ``COMMIT`` in
one message: its row lock serialises the appending transactions from that call to their commit, and a
transaction's commit is visible before the next one gets its cursor. Cursors therefore grow in commit
order across every daemon, with no gaps. The cost is that event-appending commits are serialised, but
only for the server-side call and the commit itself, never a client round trip; ``pg_notify`` on
``fluxdepot_events`` rides in the same call and is delivered at commit.

Invariants (as on SQLite): a status changes only from the expected one (no row → ``StatusConflict``),
along ``engine.status.advance``; every step appends the next chained event; a flow has a job row exactly
while its status is in ``JOB_STATUSES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.errors import StatusConflict
from engine.model import Finding, FlowRecord, Severity
from engine.status import FlowEvent, FlowStatus
from engine.store import sql_flows as sql
from engine.store.postgres_db import READER, PgTransaction
from engine.store.rows import finding_values
from engine.store.writes import JOB_STATUSES, Change, chain

# The columns of the COPY of a verdict's invoices and findings, in order.
INVOICE_COLUMNS = (
    "flow_number", "idx", "document", "number", "type_code", "issue_date", "issue_year", "currency",
    "supplier_id", "supplier_name", "buyer_id", "buyer_name", "service_code", "engagement_number",
    "total_without_vat", "total_with_vat", "amount_due", "guideline", "has_attachment", "status",
)  # fmt: skip
FINDING_COLUMNS = (
    "flow_number", "invoice_idx", "position", "code", "message", "severity", "rule", "business_term", "location",
    "document",
)  # fmt: skip


def records(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Rows of named values as records of ``columns`` (a COPY's)."""
    return [tuple(row[column] for column in columns) for row in rows]


async def set_status(tx: PgTransaction, change: Change) -> FlowRecord:
    """Apply ``change`` in ONE compare-and-set update; append one event per step; the job follows the
    final status. Returns the flow as updated.

    The update locks the flow row until commit: a concurrent change of the same flow waits, then finds
    the new status and conflicts.
    """
    number, expected, at = change.flow_number, change.expected, change.at
    steps = change.steps()
    final = steps[-1][0]
    rows = await tx.rows(
        sql.SET_STATUS, {"flow_number": number, "expected": expected.code, "new_status": final.code, "at": at}
    )
    if not rows:
        actual = await tx.value(sql.GET_STATUS, {"flow_number": number})
        raise StatusConflict(number, expected.name, FlowStatus(actual).name if actual else None)
    row = rows[0]
    issuer, syntax, deposited_at = str(row["issuer_siret"]), str(row["syntax"]), row["deposited_at"]
    tx.count_flow(issuer, deposited_at, syntax, expected.code, -1)
    tx.count_flow(issuer, deposited_at, syntax, final.code, +1)
    await append_events(tx, number, steps, at=at, actor=change.actor, detail=change.detail)
    if final in JOB_STATUSES:
        if expected not in JOB_STATUSES:  # else the job is there already (and kept, as SQLite does)
            # Recreated on ADMIN_RELEASE / ADMIN_REPROCESS (and NOTIFY the workers).
            await tx.execute(sql.ENSURE_JOB, {"flow_number": number, "available_at": at})
    elif expected in JOB_STATUSES:  # else there is no job to delete
        await tx.execute(sql.DELETE_JOB, {"flow_number": number})
    return READER.flow(row)


async def append_events(
    tx: PgTransaction,
    flow_number: str,
    steps: Sequence[tuple[FlowStatus, FlowEvent | None]],
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> None:
    """Chain the flow's next events; ``PgTransaction.commit`` writes them with their cursors."""
    pending = tx.last_pending(flow_number)
    if pending is not None:
        last: tuple[int, str] | None = (pending.seq, pending.hash)
    elif steps[0][1] is None:
        last = None  # the creating event of a flow inserted in this transaction
    else:
        found = await tx.rows(sql.LAST_EVENT, {"flow_number": flow_number})
        last = (int(found[0]["seq"]), str(found[0]["hash"])) if found else None
    tx.events.extend(chain(flow_number, last, steps, at=at, actor=actor, detail=detail))


async def add_flow_finding(tx: PgTransaction, flow_number: str, finding: Finding) -> None:
    """Append a flow-level finding after the flow's existing ones (counted when it is an error)."""
    position = int(await tx.value(sql.NEXT_FINDING_POSITION, {"flow_number": flow_number}))
    await tx.copy(
        "findings", records([finding_values(flow_number, None, position, finding)], FINDING_COLUMNS), FINDING_COLUMNS
    )
    if finding.severity is Severity.ERROR:
        key = (await tx.rows(sql.FLOW_COUNTER_KEY, {"flow_number": flow_number}))[0]
        tx.count_error(
            str(key["issuer_siret"]), key["deposited_at"], str(key["syntax"]), finding.code, finding.rule, +1
        )
