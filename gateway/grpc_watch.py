"""The live feeds behind ``WatchFlow`` and ``WatchFlows``: the store's event log, read by cursor.

``Store.events_after`` returns status changes in commit order with a growing cursor, already filtered by
the caller's ``Visibility``; ``wait_for_events`` wakes us when a later one may exist (a hint: we always
re-query). Because every event sent carries its cursor and the feed resumes strictly after the cursor a
client sends back, a reconnect loses nothing and repeats nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.permissions import Visibility
from engine.queries import EventRecord
from engine.status import FlowStatus
from engine.store.port import Store

BATCH = 500


async def flow_events(
    store: Store, flow_number: str, visibility: Visibility, *, wait_s: float
) -> AsyncIterator[EventRecord]:
    """The flow's history, then its status changes as they commit, ending after a final status."""
    cursor = 0
    while True:
        batch = await store.events_after(cursor, visibility, limit=BATCH, flow_number=flow_number)
        for event in batch:
            cursor = event.cursor
            yield event
        if batch and batch[-1].status.is_final and len(batch) < BATCH:
            return
        if len(batch) < BATCH:
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
        batch = await store.events_after(cursor, visibility, limit=BATCH)
        for event in batch:
            cursor = event.cursor
            if issuer_sirets and event.issuer_siret not in issuer_sirets:
                continue
            if statuses and event.status not in statuses:
                continue
            yield event
        if len(batch) < BATCH:
            await store.wait_for_events(cursor, wait_s)
