"""The live feeds behind ``WatchFlow`` and ``WatchFlows``: the store's event log, read by cursor.

``Store.events_after`` returns status changes in commit order with a growing cursor, already filtered by
the caller's ``Visibility``; ``wait_for_events`` wakes us when a later one may exist (a hint: we always
re-query). Because every event sent carries its cursor and the feed resumes strictly after the cursor a
client sends back, a reconnect loses nothing and repeats nothing.

The feed's own cursor also moves past the events the caller may not see (``_scan``): otherwise, once a
hidden event is the newest, ``wait_for_events`` would return at once forever and the stream would spin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.permissions import Visibility
from engine.queries import EventRecord
from engine.status import FlowStatus
from engine.store.port import Store

BATCH = 500


async def _scan(
    store: Store, cursor: int, visibility: Visibility, flow_number: str | None = None
) -> tuple[list[EventRecord], int]:
    """The visible events after ``cursor`` (at most ``BATCH``) and the cursor to resume from.

    A full batch resumes after its last event. A shorter one saw every event committed before the query,
    hidden ones included, so it resumes after the newest of them: ``latest_cursor`` is read before the
    query and cursors follow commit order, so no event at or below it can still appear.
    """
    scanned = await store.latest_cursor()
    batch = await store.events_after(cursor, visibility, limit=BATCH, flow_number=flow_number)
    if len(batch) == BATCH:
        return batch, batch[-1].cursor
    return batch, max(cursor, scanned, batch[-1].cursor if batch else 0)


async def flow_events(
    store: Store, flow_number: str, visibility: Visibility, *, wait_s: float
) -> AsyncIterator[EventRecord]:
    """The flow's history, then its status changes as they commit, ending after a final status."""
    cursor = 0
    while True:
        batch, resume = await _scan(store, cursor, visibility, flow_number)
        for event in batch:
            yield event
        cursor = resume
        if len(batch) < BATCH:
            if batch and batch[-1].status.is_final:
                return
            await store.wait_for_events(cursor, wait_s)


async def all_events(
    store: Store,
    visibility: Visibility,
    *,
    cursor: int,
    from_start: bool,
    issuer_sirets: frozenset[str],
    statuses: frozenset[FlowStatus],
    wait_s: float,
) -> AsyncIterator[EventRecord]:
    """Every visible status change after ``cursor`` (0: from now, or from the first with
    ``from_start``), optionally restricted to some issuers or statuses; never ends by itself."""
    if cursor == 0 and not from_start:
        cursor = await store.latest_cursor()
    while True:
        batch, resume = await _scan(store, cursor, visibility)
        for event in batch:
            if issuer_sirets and event.issuer_siret not in issuer_sirets:
                continue
            if statuses and event.status not in statuses:
                continue
            yield event
        cursor = resume
        if len(batch) < BATCH:
            await store.wait_for_events(cursor, wait_s)
