"""``SqlStore``: the part of ``engine.store.port.Store`` both backends share, implemented once on a ``Database``.

Flow reads (``flow_reads``), the directory, credentials, administration and retention
(``directory_store``), SFTP lockouts (``lockouts``) and monitoring (``monitoring``) run the named
statements of the ``sql_*`` modules through ``engine.store.database``. ``SqliteStore`` and
``PostgresStore`` add what each does its own way: opening, the flows' writes (deposits, status changes and
verdicts through ``_record``, the work queue), wake-ups and singletons.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime

from engine.model import Finding, FlowRecord, InvoiceOutcome
from engine.status import FlowEvent, FlowStatus, events_of, walk
from engine.store.database import Database
from engine.store.directory_store import DirectoryStore
from engine.store.flow_reads import FlowReads
from engine.store.lockouts import Lockouts
from engine.store.monitoring import Monitoring
from engine.store.portal_sessions import PortalSessions
from engine.store.wakeups import VerdictWakeups
from engine.store.webhooks import Webhooks
from engine.store.writes import Change, Verdict


class SqlStore(FlowReads, DirectoryStore, Lockouts, Monitoring, VerdictWakeups, PortalSessions, Webhooks):
    """The shared part of both stores (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def transition(
        self,
        flow_number: str,
        expected: FlowStatus,
        event: FlowEvent | Sequence[FlowEvent],
        *,
        actor: str,
        at: datetime,
        detail: str | None = None,
    ) -> FlowRecord:
        """Compare-and-set along ``advance(expected, event)`` and append the event; several events are
        applied in order in one transaction (see the port)."""
        change = Change(flow_number, expected, events_of(event), at, actor, detail)
        walk(expected, change.events)  # InvalidTransition before touching the database
        return self._recorded(await self._record(change, None))  # committed: wakes the outbox (wakeups)

    async def record_verdict(
        self,
        flow_number: str,
        expected: FlowStatus,
        event: FlowEvent | Sequence[FlowEvent],
        *,
        actor: str,
        at: datetime,
        flow_findings: Sequence[Finding],
        invoices: Sequence[InvoiceOutcome],
        ruleset_version: str,
        detail: str | None = None,
    ) -> FlowRecord:
        """Replace the flow's invoices and findings with the verdict's and move its status (after the
        steps before the verdict's event, when ``event`` holds several), atomically."""
        change = Change(flow_number, expected, events_of(event), at, actor, detail)
        walk(expected, change.events)  # InvalidTransition before touching the database
        verdict = Verdict(tuple(flow_findings), tuple(invoices), ruleset_version)
        return self._recorded(await self._record(change, verdict))

    @abstractmethod
    async def _record(self, change: Change, verdict: Verdict | None) -> FlowRecord:
        """``change`` and, when given, ``verdict`` in one transaction; the flow as it is then. A
        reprocessed flow (ADMIN_REPROCESS) is judged again: the new verdict replaces the old one."""

    async def add_return_flow(self, flow_number: str, name: str) -> None:
        """Record a return flow file name on the flow (idempotent: a name is recorded once)."""
        await self.add_return_flows([(flow_number, name)])

    @abstractmethod
    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None: ...
