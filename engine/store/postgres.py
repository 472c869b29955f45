"""``PostgresStore``: the ``engine.store.port.Store`` on PostgreSQL (asyncpg), for scale-out: several
daemons on several machines share one database and behave as one system.

* A connection pool (``pool_min``..``pool_max``) per store; every write is one transaction
  (``postgres_db.Tx``) that ends with the counter deltas and the status events (``postgres_status.commit``);
  ``durable`` means committed, with PostgreSQL's default ``synchronous_commit = on``.
* Flow numbers come from the sequence ``flow_seq``: unique across processes, never reused.
* Claims are one autocommit ``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)``: concurrent workers of
  any daemon never wait for each other nor take the same job. Leases and heartbeats are as on SQLite: an
  expired lease is cleared (and its attempt counted) by ``recover_expired_leases``, which also skips
  locked rows so two daemons recovering at once count an expiry once.
* Enqueueing a job NOTIFYs ``fluxdepot_work`` and appending events NOTIFYs ``fluxdepot_events`` (with the
  last cursor), delivered at commit; ``wait_for_work``/``wait_for_events`` wait on them
  (``postgres_listen``) and fall back to timeouts when the listening connection is down.
* The event feed is in commit order across processes (``postgres_status`` says how and at what cost).
* An invoice is integrated once: a unique index on integrated invoices makes the second of two racing
  verdicts fail with ``InvoiceAlreadyIntegrated`` (a ``StatusConflict``); the worker judges it again.
* Periodic singletons (watchdog, outbox) are session-level advisory locks on a dedicated connection
  (``postgres_singletons``): they die with the daemon's connection and pass to another daemon.
* Connection loss raises ``StoreUnavailable`` ("the database is unreachable", driver error as cause);
  the pool re-connects by itself on later calls once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from engine import catalogue
from engine.directory import DirectoryData, DirectorySnapshot, Partner, Structure
from engine.errors import AlreadyExists, FlowNotFound, InvoiceAlreadyIntegrated, StoreError, StoreUnavailable
from engine.flownumber import format_flow_number
from engine.model import Finding, FlowRecord, InvoiceOutcome, InvoiceStatus, Severity, StatusChange
from engine.status import FlowEvent, FlowStatus, events_of, walk
from engine.store import postgres_directory as directory_sql
from engine.store import postgres_sql as sql
from engine.store.port import Claim, NewFlow, Recovered
from engine.store.postgres_admin import PostgresAdmin
from engine.store.postgres_db import DriverError, Tx, end_open_transaction, is_unique_violation, migrate, wrap
from engine.store.postgres_listen import Listener
from engine.store.postgres_rows import (
    change_from_row,
    facts_from_row,
    finding_from_row,
    finding_record,
    flow_from_row,
    invoice_record,
    utc,
)
from engine.store.postgres_singletons import Singletons
from engine.store.postgres_status import (
    add_flow_finding,
    append_event,
    commit,
    insert_findings,
    set_status,
)

S = FlowStatus

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 5.0


class PostgresStore(PostgresAdmin):
    """The scale-out store (see the module docstring)."""

    def __init__(self, url: str, *, pool_min: int = 2, pool_max: int = 10) -> None:
        super().__init__()
        self.url = url
        self.pool_min = pool_min
        self.pool_max = pool_max
        self._listener = Listener(url, (sql.WORK_CHANNEL, sql.EVENTS_CHANNEL))
        self._singletons = Singletons(url)

    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the pool, apply pending migrations (under the migration advisory lock), LISTEN."""
        with wrap():
            pool = await asyncpg.create_pool(
                self.url,
                min_size=self.pool_min,
                max_size=self.pool_max,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                reset=end_open_transaction,
            )
            try:
                async with pool.acquire() as conn:
                    await migrate(conn)
            except BaseException:
                await pool.close()
                raise
        self._pool = pool
        await self._listener.ensure()

    async def close(self) -> None:
        """Close the singletons' and listener's connections and the pool: waits up to ``CLOSE_TIMEOUT_S``
        for connections in use to be released, then terminates the rest (a connection broken by a lost
        server may never be released: shutdown stays bounded)."""
        pool, self._pool = self._pool, None
        await self._singletons.close()
        await self._listener.close()
        if pool is not None:
            try:
                with wrap():
                    await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except StoreError:
                pool.terminate()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Tx]:
        """One write transaction, ending with counters and events sent together with ``COMMIT``
        (``postgres_status.commit``); rolled back on any error; errors wrapped. Plain ``BEGIN``/``COMMIT``
        rather than the driver's transaction object, because the commit rides in the flush's message."""
        pool = self._require_pool()
        with wrap():
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                try:
                    tx = Tx(conn)
                    yield tx
                    await commit(tx)
                except BaseException:
                    if not conn.is_closed() and conn.is_in_transaction():
                        with contextlib.suppress(*DriverError):
                            await conn.execute("ROLLBACK")
                    raise

    # --- flows ---------------------------------------------------------------------------------
    async def create_flow(self, new: NewFlow) -> FlowRecord:
        """Allocate the number and insert flow + first event + job in one committed transaction.

        Raises ``AlreadyExists`` when the depositor already has a flow with ``new.tracking_id`` (the
        unique index decides under concurrency, across daemons).
        """
        deposited_at = utc(new.deposited_at)
        async with self._write() as tx:
            seq = int(await tx.conn.fetchval(sql.NEXT_FLOW_SEQ))
            number = format_flow_number(new.number_prefix, new.syntax.interface_number, seq)
            try:
                row = await tx.conn.fetchrow(
                    sql.INSERT_FLOW,
                    seq,
                    number,
                    new.file_name,
                    new.syntax.value,
                    new.declared_syntax,
                    new.channel.value,
                    new.issuer_siret,
                    new.depositor,
                    S.RECEIVED.code,
                    deposited_at,
                    new.sha256,
                    new.size_bytes,
                    new.blob_key,
                    new.tracking_id,
                    new.partner_code,
                )
            except asyncpg.UniqueViolationError as exc:
                if is_unique_violation(exc, "flows_tracking"):
                    raise AlreadyExists(
                        f"{new.depositor} already deposited a flow with tracking id {new.tracking_id!r}"
                    ) from exc
                raise
            tx.counts.flow(new.issuer_siret, deposited_at, new.syntax.value, S.RECEIVED.code, +1)
            await append_event(tx, number, S.RECEIVED, None, at=deposited_at, actor=new.depositor, detail=None)
            await tx.conn.execute(sql.ENSURE_JOB, number, deposited_at)
            if new.content is not None:
                await tx.conn.execute(sql.INSERT_CONTENT, number, new.content)
            return flow_from_row(row)

    async def find_by_tracking_id(self, depositor: str, tracking_id: str) -> FlowRecord | None:
        row = await self._fetchrow(sql.FIND_BY_TRACKING_ID, depositor, tracking_id)
        return flow_from_row(row) if row else None

    async def get_flow(self, flow_number: str) -> FlowRecord | None:
        row = await self._fetchrow(sql.GET_FLOW, flow_number)
        return flow_from_row(row) if row else None

    async def get_blob_key(self, flow_number: str) -> str | None:
        row = await self._fetchrow(sql.GET_BLOB_KEY, flow_number)
        return str(row["blob_key"]) if row else None

    async def history(self, flow_number: str) -> list[StatusChange]:
        """The flow's status events in order (seq 1 is RECEIVED)."""
        return [change_from_row(r) for r in await self._fetch(sql.HISTORY, flow_number)]

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
        events = events_of(event)
        walk(expected, events)  # InvalidTransition before touching the database
        async with self._write() as tx:
            return await set_status(tx, flow_number, expected, events, at=at, actor=actor, detail=detail)

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
        steps before the verdict's event, when ``event`` holds several), atomically.

        Raises ``InvoiceAlreadyIntegrated`` (nothing written) when another flow integrated one of the
        invoices since this verdict was judged: the caller judges the flow again.
        """
        walk(expected, events_of(event))  # InvalidTransition before touching the database
        async with self._write() as tx:
            moved = await set_status(tx, flow_number, expected, event, at=at, actor=actor, detail=detail)
            return await self._replace_verdict(tx, moved, flow_findings, invoices, ruleset_version)

    async def _replace_verdict(
        self,
        tx: Tx,
        flow: FlowRecord,
        flow_findings: Sequence[Finding],
        invoices: Sequence[InvoiceOutcome],
        ruleset_version: str,
    ) -> FlowRecord:
        """Write the verdict of ``flow`` (as its status update returned it); returns the flow updated.
        A reprocessed flow (ADMIN_REPROCESS) is judged again: the new verdict replaces the old one."""
        flow_number = flow.flow_number
        issuer, deposited_at, syntax = flow.issuer_siret, flow.deposited_at, flow.syntax.value
        for old in await tx.conn.fetch(sql.DELETE_FINDINGS_RETURNING, flow_number):
            if old["severity"] == Severity.ERROR.value:
                tx.counts.error(issuer, deposited_at, syntax, str(old["code"]), old["rule"], -1)
        await tx.conn.execute(sql.DELETE_INVOICES, flow_number)
        findings = [finding_record(flow_number, None, pos, f) for pos, f in enumerate(flow_findings)]
        for idx, outcome in enumerate(invoices):
            base = len(findings)  # taken once: extend() would see the list grow under a generator
            findings.extend(finding_record(flow_number, idx, base + k, f) for k, f in enumerate(outcome.findings))
        if invoices:
            try:
                await tx.conn.copy_records_to_table(
                    "invoices",
                    records=[invoice_record(flow_number, i, o.facts, o.status) for i, o in enumerate(invoices)],
                    columns=sql.INVOICE_COLUMNS,
                )
            except asyncpg.UniqueViolationError as exc:
                if is_unique_violation(exc, sql.INVOICES_UNIQUE):
                    raise InvoiceAlreadyIntegrated(flow_number) from exc
                raise
        await insert_findings(tx, findings)
        all_findings = [*flow_findings, *(f for o in invoices for f in o.findings)]
        for f in all_findings:
            if f.severity is Severity.ERROR:
                tx.counts.error(issuer, deposited_at, syntax, f.code, f.rule, +1)
        integrated = sum(1 for o in invoices if o.status is InvoiceStatus.INTEGRATED)
        row = await tx.conn.fetchrow(
            sql.SET_VERDICT_COUNTS,
            flow_number,
            len(invoices),
            integrated,
            len(invoices) - integrated,
            ruleset_version,
        )
        return flow_from_row(row)

    async def flow_findings(self, flow_number: str) -> list[Finding]:
        return [finding_from_row(r) for r in await self._fetch(sql.FLOW_FINDINGS, flow_number)]

    async def invoices(self, flow_number: str) -> list[InvoiceOutcome]:
        rows = await self._fetch(sql.INVOICES_WITH_FINDINGS, flow_number)
        heads: dict[int, Any] = {}
        findings: dict[int, list[Finding]] = {}
        for row in rows:
            idx = int(row["idx"])
            heads.setdefault(idx, row)
            findings.setdefault(idx, [])
            if row["f_code"] is not None:
                findings[idx].append(finding_from_row(row, "f_"))
        return [
            InvoiceOutcome(facts_from_row(row), InvoiceStatus(row["invoice_status"]), tuple(findings[idx]))
            for idx, row in heads.items()
        ]

    async def ruleset_version(self, flow_number: str) -> str | None:
        row = await self._fetchrow(sql.GET_RULESET_VERSION, flow_number)
        return None if row is None or row[0] is None else str(row[0])

    async def add_return_flow(self, flow_number: str, name: str) -> None:
        """Record a return flow file name on the flow (idempotent: a name is recorded once)."""
        async with self._write() as tx:
            if not await tx.conn.fetchval(sql.ADD_RETURN_FLOW, flow_number, name):
                raise FlowNotFound(flow_number)

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record several return flows in one transaction (see the port)."""
        if not pairs:
            return
        async with self._write() as tx:
            for flow_number, name in pairs:
                if not await tx.conn.fetchval(sql.ADD_RETURN_FLOW, flow_number, name):
                    raise FlowNotFound(flow_number)

    async def all_flow_numbers(self) -> list[str]:
        """Every flow number, oldest first."""
        return [str(r[0]) for r in await self._fetch(sql.ALL_FLOW_NUMBERS)]

    # --- work queue ----------------------------------------------------------------------------
    async def claim(self, worker_id: str, *, now: datetime, lease_s: float) -> Claim | None:
        """Lease the oldest available unleased job to ``worker_id``; None when there is none."""
        self._note_claim_attempt()
        expires = utc(now) + timedelta(seconds=lease_s)
        row = await self._fetchrow(sql.CLAIM, utc(now), worker_id, expires)
        if row is None:
            return None
        return Claim(
            flow_number=str(row["flow_number"]),
            status=FlowStatus(row["status"]),
            attempts=int(row["attempts"]),
            lease_expires_at=expires,
            blob_key=str(row["blob_key"]),
            content=row["content"],
        )

    async def heartbeat(self, flow_number: str, worker_id: str, *, now: datetime, lease_s: float) -> bool:
        """Extend the lease to ``now + lease_s``; False when ``worker_id`` no longer holds it."""
        expires = utc(now) + timedelta(seconds=lease_s)
        return await self._execute(sql.HEARTBEAT, flow_number, worker_id, expires) == "UPDATE 1"

    async def release(self, flow_number: str, worker_id: str) -> None:
        """Hand the job back (its status unchanged) without counting an attempt."""
        await self._execute(sql.RELEASE, flow_number, worker_id)

    async def recover_expired_leases(
        self, *, now: datetime, actor: str, max_attempts: int = 2, every_lease: bool = False
    ) -> list[Recovered]:
        """Count an attempt for every expired lease and move its flow (see the port and SQLite)."""
        recovered: list[Recovered] = []
        expired_before = datetime.max.replace(tzinfo=UTC) if every_lease else utc(now)
        async with self._write() as tx:
            for row in await tx.conn.fetch(sql.EXPIRED_LEASES, expired_before):
                number, status = str(row["flow_number"]), FlowStatus(row["status"])
                attempts = int(row["attempts"]) + 1
                if attempts >= max_attempts:
                    detail = f"lease expired {attempts} times"
                    held = await set_status(tx, number, status, FlowEvent.HOLD, at=now, actor=actor, detail=detail)
                    to = held.status
                    await add_flow_finding(tx, number, catalogue.finding("PROCESSING_INTERRUPTED"))
                else:
                    await tx.conn.execute(sql.CLEAR_EXPIRED_LEASE, number, attempts)
                    to = status
                    if status is S.IN_PROGRESS:
                        back = await set_status(
                            tx,
                            number,
                            status,
                            FlowEvent.LEASE_EXPIRED,
                            at=now,
                            actor=actor,
                            detail="lease expired",
                        )
                        to = back.status
                recovered.append(Recovered(number, status, to))
        return recovered

    async def queue_depth(self) -> int:
        """Flows with a job: not yet judged, leased or not."""
        return int(await self._fetchval(sql.QUEUE_DEPTH))

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a job may have been enqueued (by any daemon) since this task's last claim, or
        after ``timeout_s``. A hint: the caller claims again."""
        listener = self._listener
        await listener.ensure()
        fut = listener.waiter(sql.WORK_CHANNEL)
        if self._work_arrived_since_claim():
            fut.cancel()
            listener.discard(sql.WORK_CHANNEL, fut)
            return
        await listener.wait(fut, sql.WORK_CHANNEL, timeout_s)

    async def wait_for_events(self, cursor: int, timeout_s: float) -> None:
        """Return as soon as a status change after ``cursor`` may have been committed, or after
        ``timeout_s`` (a hint: the caller re-queries ``events_after``)."""
        listener = self._listener
        await listener.ensure()
        fut = listener.waiter(sql.EVENTS_CHANNEL)
        try:
            latest = await self.latest_cursor()
        except StoreUnavailable:
            latest = cursor
        if latest > cursor:
            fut.cancel()
            listener.discard(sql.EVENTS_CHANNEL, fut)
            return
        await listener.wait(fut, sql.EVENTS_CHANNEL, timeout_s)

    # --- singletons ----------------------------------------------------------------------------
    async def try_singleton(self, name: str) -> bool:
        """Hold the cluster-wide singleton ``name`` (a session-level advisory lock on a dedicated
        connection, ``postgres_singletons``); False when another daemon holds it or the database is down."""
        return await self._singletons.try_hold(name)

    async def release_singleton(self, name: str) -> None:
        await self._singletons.release(name)

    # --- directory -----------------------------------------------------------------------------
    async def import_directory(self, data: DirectoryData) -> None:
        """Upsert every entry of ``data`` in one transaction (entries not in ``data`` are kept)."""
        async with self._write() as tx:
            await directory_sql.import_directory(tx.conn, data)

    async def snapshot(self, sirets: Iterable[str]) -> DirectorySnapshot:
        async with self._read() as conn:
            return DirectorySnapshot(await directory_sql.load_structures(conn, sirets))

    async def get_structure(self, siret: str) -> Structure | None:
        async with self._read() as conn:
            return (await directory_sql.load_structures(conn, [siret])).get(siret)

    async def get_partner(self, code: str) -> Partner | None:
        async with self._snapshot() as conn:
            return await directory_sql.load_partner(conn, code)

    async def integrated_invoice_flows(
        self, supplier_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """For ``(year, number)`` keys of one supplier, the oldest flow that integrated each one."""
        wanted = sorted({(year, number) for year, number in keys})
        if not wanted:
            return {}
        years, numbers = [y for y, _ in wanted], [n for _, n in wanted]
        found: dict[tuple[str, str], str] = {}
        for row in await self._fetch(sql.INTEGRATED_INVOICE_FLOWS, supplier_id, years, numbers):
            found.setdefault((str(row["issue_year"]), str(row["number"])), str(row["flow_number"]))
        return found
