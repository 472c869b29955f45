"""The live feeds of status changes: one flow's (its history, then each change until a final status) or
every flow the caller sees, read from the store's event log by cursor.

``Store.events_after`` returns status changes in commit order with a growing cursor, already filtered by
the caller's ``Visibility``; ``wait_for_events`` wakes us when a later one may exist (a hint: we always
re-query). Because every event sent carries its cursor and a feed resumes strictly after the cursor a
client sends back, a reconnect loses nothing and repeats nothing.

The feed's own cursor also moves past the events the caller may not see (``_scan``): otherwise, once a
hidden event is the newest, ``wait_for_events`` would return at once forever and the feed would spin
instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from engine.permissions import Principal, Visibility, visibility_of
from engine.queries import EventRecord
from engine.services.flows import visible_flow
from engine.status import FlowStatus
from engine.store.port import Store

BATCH = 500


class WatchService:
    """The watch use cases; ``wait_s`` bounds each wait for the store's signal before querying again."""

    def __init__(self, store: Store, *, wait_s: float) -> None:
        self._store = store
        self._wait_s = wait_s

    async def watch_flow(self, principal: Principal, flow_number: str) -> AsyncIterator[EventRecord]:
        """The history of a flow the caller sees (``FlowNotFound`` otherwise), then its status changes as
        they commit; ends after a final status."""
        flow = await visible_flow(self._store, principal, flow_number)
        visibility = visibility_of(principal)
        cursor = 0
        while True:
            batch, resume = await self._scan(cursor, visibility, flow.flow_number)
            for event in batch:
                yield event
            cursor = resume
            if len(batch) < BATCH:
                if batch and batch[-1].status.is_final:
                    return
                await self._store.wait_for_events(cursor, self._wait_s)

    async def watch_flows(
        self,
        principal: Principal,
        *,
        cursor: int = 0,
        from_start: bool = False,
        issuer_sirets: Collection[str] = (),
        statuses: Collection[FlowStatus] = (),
    ) -> AsyncIterator[EventRecord]:
        """Every status change the caller may see after ``cursor`` (0: from now, or from the first with
        ``from_start``), optionally only those of some issuers or to some statuses; never ends by itself."""
        visibility = visibility_of(principal)
        issuers, wanted = frozenset(issuer_sirets), frozenset(statuses)
        if cursor == 0 and not from_start:
            cursor = await self._store.latest_cursor()
        while True:
            batch, resume = await self._scan(cursor, visibility)
            for event in batch:
                if issuers and event.issuer_siret not in issuers:
                    continue
                if wanted and event.status not in wanted:
                    continue
                yield event
            cursor = resume
            if len(batch) < BATCH:
                await self._store.wait_for_events(cursor, self._wait_s)

    async def _scan(
        self, cursor: int, visibility: Visibility, flow_number: str | None = None
    ) -> tuple[list[EventRecord], int]:
        """The visible events after ``cursor`` (at most ``BATCH``) and the cursor to resume from.

        A full batch resumes after its last event. A shorter one saw every event committed before the query,
        hidden ones included, so it resumes after the newest of them: ``latest_cursor`` is read before the
        query and cursors follow commit order, so no event at or below it can still appear.
        """
        scanned = await self._store.latest_cursor()
        batch = await self._store.events_after(cursor, visibility, limit=BATCH, flow_number=flow_number)
        if len(batch) == BATCH:
            return batch, batch[-1].cursor
        return batch, max(cursor, scanned, batch[-1].cursor if batch else 0)
