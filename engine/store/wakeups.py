"""The store's own wake-ups: idle workers wait for work and the outbox for verdicts through the store that
records them, never through callbacks from the faces (DESIGN §1).

* ``Signal`` counts notifications and wakes whoever waits past a count; one event loop, no I/O.
* ``VerdictWakeups`` (both backends): a store object counts the verdicts it commits that give return
  flows (a final status of an EDI partner's flow, ``engine.return_flows.has_return_flows``) and wakes
  ``wait_for_verdicts``. Verdicts committed by other daemons sharing a PostgreSQL store reach the outbox
  as status events (``wait_for_events``, LISTEN/NOTIFY).
* ``SqliteWorkWakeups``: ``wait_for_work`` on SQLite, whose jobs are all enqueued by the one process
  owning the file: new flows and flows put back in the queue (ADMIN_RELEASE, ADMIN_REPROCESS) signal
  idle workers at commit. PostgreSQL's ``wait_for_work`` LISTENs instead (``postgres_listen``).

Every wake-up is a hint: the caller queries again. A wait never misses a signal given after the caller's
last look (``claim`` notes the count it saw; ``wait_for_verdicts`` takes the count returned last time).
"""

from __future__ import annotations

import asyncio
import contextvars
from contextlib import suppress
from functools import cached_property

from engine.model import FlowRecord
from engine.return_flows import has_return_flows
from engine.status import FlowStatus

# Per task: the work signal's count when it last tried to claim, with the store it claimed from.
_CLAIM_SEEN: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("sqlite_claim_seen")


class Signal:
    """A count of notifications; ``wait_past`` returns once it passes a count seen before."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_past(self, seen: int, timeout_s: float) -> int:
        """The count, once above ``seen`` or after ``timeout_s`` (at once when it already is)."""
        if self.count <= seen and timeout_s > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self.count


class VerdictWakeups:
    """``wait_for_verdicts`` for a store; its ``transition`` and ``record_verdict`` pass the flow they
    committed to ``_recorded``."""

    @cached_property
    def _verdicts(self) -> Signal:
        return Signal()

    def _recorded(self, flow: FlowRecord) -> FlowRecord:
        """After a status change committed: a verdict that gives return flows wakes the outbox."""
        if flow.status.is_final and has_return_flows(flow):
            self._verdicts.notify()
        return flow

    async def wait_for_verdicts(self, seen: int, timeout_s: float) -> int:
        """See ``engine.store.port.Store.wait_for_verdicts``."""
        return await self._verdicts.wait_past(seen, timeout_s)


class SqliteWorkWakeups(VerdictWakeups):
    """``wait_for_work`` on SQLite: ``create_flow`` calls ``_work_enqueued`` once its flow is committed,
    ``claim`` calls ``_note_claim_attempt`` first, and ``_recorded`` signals a flow put back in the queue."""

    @cached_property
    def _work(self) -> Signal:
        return Signal()

    def _work_enqueued(self) -> None:
        self._work.notify()

    def _note_claim_attempt(self) -> None:
        _CLAIM_SEEN.set((id(self), self._work.count))

    def _recorded(self, flow: FlowRecord) -> FlowRecord:
        if flow.status is FlowStatus.WAITING_FOR_PROCESSING:  # released or reprocessed by an operator
            self._work.notify()
        return super()._recorded(flow)

    @property
    def work_count(self) -> int:
        """How many times work was enqueued so far (``wait_for_work_past``)."""
        return self._work.count

    async def wait_for_work_past(self, seen: int, timeout_s: float) -> int:
        """``work_count``, once above ``seen`` or after ``timeout_s``: for a waiter that does not claim
        through ``claim`` (the flows' pump)."""
        return await self._work.wait_past(seen, timeout_s)

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a job was enqueued since this task's last ``claim`` began, or after ``timeout_s``."""
        seen = _CLAIM_SEEN.get(None)
        after = seen[1] if seen is not None and seen[0] == id(self) else self._work.count
        await self._work.wait_past(after, timeout_s)
