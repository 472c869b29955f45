"""``SqliteStore``: the ``engine.store.port.Store`` on an embedded SQLite file, through aiosqlite.

Connections: writers sharing one ``asyncio.Lock`` (SQLite has one writer; every write is one
``BEGIN IMMEDIATE`` transaction), and one reader (WAL lets it read while a writer commits), guarded by
its own lock so a multi-statement read sees one snapshot. New flows are committed by a child process,
the deposits' writer (``sqlite_flow_writer``), so that their rows cost the event loop no GIL time. The
flows' other writes (status changes, verdicts, the work queue) run each transaction as one call into a
writer thread (``sqlite_db.ThreadConnection``): a round trip per statement would cost the event loop
more than SQLite does. Directory and administration writes use the aiosqlite writer. The three writers
share one ``asyncio.Lock``; other processes opening the same file are serialised by ``BEGIN IMMEDIATE``
plus the busy timeout.

Invariants (beyond the port's):

* ``create_flow`` returns only after ``COMMIT`` with ``synchronous=FULL``: the deposit is on disk.
  So do directory, token and administration writes, and the operator's status events.
* The workers' writes (claim, heartbeat, release, lease recovery, status steps and verdicts) commit
  with ``synchronous=NORMAL``: in WAL mode the commit is in the WAL file (the OS page cache) when it
  returns, so it survives a crash of the process, but a power loss may lose the last of them. That
  is safe: such a loss only moves flows back to an earlier, already-durable status of their walk (at
  worst RECEIVED, whose row and blob were synced by ``create_flow``) with their job row, and a
  restart's lease recovery takes them through their checks again (DESIGN §9.2). Nothing acknowledged
  to a depositor depends on them, and the hash chain stays whole (the WAL loses a suffix of commits,
  never one from the middle). Any later FULL commit or checkpoint makes them durable too.
* Status changes, their hash-chained events and the job row go through ``engine.store.sqlite_status``.
* ``claim`` leases only jobs nobody holds; an expired lease is first cleared by
  ``recover_expired_leases`` (which records the attempt and the status change), then claimable again.
* A path of ``:memory:`` is not supported (the two connections would see two databases).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiosqlite

from engine import catalogue
from engine.directory import DirectoryData, DirectorySnapshot, Partner, Structure
from engine.errors import AlreadyExists, FlowNotFound, StoreUnavailable
from engine.model import Finding, FlowRecord, InvoiceOutcome, InvoiceStatus, StatusChange
from engine.status import ADMIN_EVENTS, FlowEvent, FlowStatus, events_of, walk
from engine.store import sqlite_directory as directory_sql
from engine.store import sqlite_outbox
from engine.store import sqlite_sql as sql
from engine.store.group_commit import GroupCommit
from engine.store.port import Claim, NewFlow, Recovered, ReportInputs
from engine.store.sqlite_admin import SqliteAdmin
from engine.store.sqlite_db import SyncSetting, ThreadConnection, connect, migrate, transaction, wrap
from engine.store.sqlite_flow_writer import FlowWriterProcess, WriterDied
from engine.store.sqlite_queries import CommitSignal, SqliteQueries
from engine.store.sqlite_rows import (
    change_from_row,
    facts_from_row,
    finding_from_row,
    finding_params,
    flow_from_row,
    invoice_params,
    to_db_time,
    utc,
)
from engine.store.sqlite_status import add_flow_finding, read_flow, set_status, set_statuses

S = FlowStatus
T = TypeVar("T")


WORK_POLL_S = 0.2  # wait_for_work: how long an idle worker sleeps before claiming again


class SqliteStore(SqliteQueries, SqliteAdmin):
    """The default store: one SQLite file in WAL mode (see the module docstring).

    Monitoring queries live in ``engine.store.sqlite_queries``, authentication and administration in
    ``engine.store.sqlite_admin``; both run on this class's connections and locks.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._flow_writer: ThreadConnection | None = None  # the flows' writes (module docstring)
        self._queue_seen_empty = True  # claim: look on the reader first (see claim)
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._commits = CommitSignal()  # wakes wait_for_events after each committed write
        self._creates: GroupCommit[NewFlow, FlowRecord] = GroupCommit(self._create_batch)
        self._creator = FlowWriterProcess(path)  # the deposits' writer, a child process (module docstring)
        self._writer_sync = SyncSetting()  # connect() sets synchronous=FULL

    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect both connections and apply pending migrations."""
        with wrap():
            writer = await connect(self.path)
            try:
                await migrate(writer, self._write_lock)
                reader = await connect(self.path, read_only=True)
            except BaseException:
                await writer.close()
                raise
            flow_writer = ThreadConnection(self.path)
            try:
                await flow_writer.open()
            except BaseException:
                await flow_writer.close()
                await reader.close()
                await writer.close()
                raise
        self._writer, self._reader, self._flow_writer = writer, reader, flow_writer
        self._writer_sync = SyncSetting()

    async def close(self) -> None:
        """Wait for running transactions, then close the connections (the WAL is checkpointed)."""
        await self._creates.drain()
        async with self._write_lock, self._read_lock:
            writer, reader, flow_writer = self._writer, self._reader, self._flow_writer
            self._writer = self._reader = self._flow_writer = None
            await self._creator.close()
            with wrap():
                if flow_writer is not None:
                    await flow_writer.close()
                if reader is not None:
                    await reader.close()
                if writer is not None:
                    await writer.close()

    @asynccontextmanager
    async def _write(self, *, durable: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection, driver errors wrapped; synced to disk at
        COMMIT unless ``durable=False`` (the workers' writes, see the module docstring)."""
        if self._writer is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            async with transaction(
                self._writer, self._write_lock, write=True, durable=durable, sync=self._writer_sync
            ) as conn:
                yield conn
        self._commits.notify()  # committed (an error skips this): a status change may be in the feed

    async def _write_flows(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """``work`` as one write transaction, in one call to the flows' writer thread, driver errors
        wrapped; synced to disk at COMMIT unless ``durable=False`` (see the module docstring)."""
        if self._flow_writer is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            result = await self._flow_writer.transaction(self._write_lock, work, durable=durable)
        self._commits.notify()
        return result

    @asynccontextmanager
    async def _read(self, *, snapshot: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """The reader connection; ``snapshot`` wraps several statements in one read transaction."""
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            if snapshot:
                async with transaction(self._reader, self._read_lock, write=False) as conn:
                    yield conn
            else:
                async with self._read_lock:
                    yield self._reader

    async def _fetch(self, query: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        async with self._read() as conn:
            return list(await conn.execute_fetchall(query, params))

    # --- flows ---------------------------------------------------------------------------------
    async def create_flow(self, new: NewFlow) -> FlowRecord:
        """Allocate the number and insert flow + first event + job in one durable transaction.

        Concurrent calls are group-committed (``engine.store.group_commit``): they share one transaction
        and one fsync, and each returns only after that COMMIT. Raises ``AlreadyExists`` when the
        depositor already has a flow with ``new.tracking_id`` (the caller re-reads it with
        ``find_by_tracking_id``); the unique index decides under concurrency, and a savepoint keeps that
        refusal from failing the rest of the batch. ``StoreUnavailable`` when the deposits' writer
        process died with the batch in flight (all of it committed or none; the depositor retries).
        """
        return await self._creates.submit(new)

    async def _create_batch(self, batch: Sequence[NewFlow]) -> list[FlowRecord | BaseException]:
        """One durable transaction for a batch, in the deposits' writer process (``sqlite_flow_writer``)."""
        if self._flow_writer is None:
            raise StoreUnavailable("the store is not open")
        async with self._write_lock:
            try:
                outcomes: Sequence[FlowRecord | BaseException] = await self._creator.commit(batch)
            except WriterDied as died:
                outcomes = await self._committed_anyway(batch, died)
        self._commits.notify()
        return list(outcomes)

    async def _committed_anyway(self, batch: Sequence[NewFlow], died: WriterDied) -> list[FlowRecord | BaseException]:
        """The outcomes of a batch whose writer died before answering, if its transaction committed
        (then every flow of it is in, but those refused for a repeated tracking id); else ``died`` is
        raised again: nothing of the batch was recorded. The child has exited: nothing commits late."""
        found: list[FlowRecord | None] = []
        for new in batch:
            rows = await self._fetch(
                sql.FIND_DEPOSITED,
                {
                    "depositor": new.depositor,
                    "issuer_siret": new.issuer_siret,
                    "deposited_at": to_db_time(new.deposited_at),
                    "sha256": new.sha256,
                    "file_name": new.file_name,
                },
            )
            found.append(flow_from_row(rows[0]) if rows else None)
        if all(flow is None for flow in found):
            raise died
        refused = AlreadyExists("a flow with this tracking id was deposited first")
        return [flow if flow is not None else refused for flow in found]

    async def find_by_tracking_id(self, depositor: str, tracking_id: str) -> FlowRecord | None:
        rows = await self._fetch(sql.FIND_BY_TRACKING_ID, {"depositor": depositor, "tracking_id": tracking_id})
        return flow_from_row(rows[0]) if rows else None

    async def get_flow(self, flow_number: str) -> FlowRecord | None:
        rows = await self._fetch(sql.GET_FLOW, {"flow_number": flow_number})
        return flow_from_row(rows[0]) if rows else None

    async def get_blob_key(self, flow_number: str) -> str | None:
        rows = await self._fetch(sql.GET_BLOB_KEY, {"flow_number": flow_number})
        return str(rows[0]["blob_key"]) if rows else None

    async def history(self, flow_number: str) -> list[StatusChange]:
        """The flow's status events in order (seq 1 is RECEIVED)."""
        return [change_from_row(r) for r in await self._fetch(sql.HISTORY, {"flow_number": flow_number})]

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
        applied in order in one transaction (see the port). Only operators' events are synced to disk
        at commit (module docstring)."""
        events = events_of(event)
        walk(expected, events)  # InvalidTransition before touching the database

        def work(conn: sqlite3.Connection) -> FlowRecord:
            set_statuses(conn, flow_number, expected, events, at=at, actor=actor, detail=detail)
            return read_flow(conn, flow_number)

        return await self._write_flows(work, durable=any(e in ADMIN_EVENTS for e in events))

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
        """Replace the flow's invoices and findings with the verdict's and move its status, atomically
        (after the steps before the verdict's event, when ``event`` holds several)."""
        events = events_of(event)
        walk(expected, events)  # InvalidTransition before touching the database

        def work(conn: sqlite3.Connection) -> FlowRecord:
            set_statuses(conn, flow_number, expected, events, at=at, actor=actor, detail=detail)
            # A reprocessed flow (ADMIN_REPROCESS) is judged again: the new verdict replaces the old one.
            conn.execute(sql.DELETE_FINDINGS, {"flow_number": flow_number})
            conn.execute(sql.DELETE_INVOICES, {"flow_number": flow_number})
            findings = [finding_params(flow_number, None, pos, f) for pos, f in enumerate(flow_findings)]
            for idx, outcome in enumerate(invoices):
                base = len(findings)  # taken once: extend() would see the list grow under a generator
                findings.extend(finding_params(flow_number, idx, base + k, f) for k, f in enumerate(outcome.findings))
            conn.executemany(
                sql.INSERT_INVOICE,
                [invoice_params(flow_number, idx, o.facts, o.status) for idx, o in enumerate(invoices)],
            )
            conn.executemany(sql.INSERT_FINDING, findings)
            integrated = sum(1 for o in invoices if o.status is InvoiceStatus.INTEGRATED)
            conn.execute(
                sql.SET_VERDICT_COUNTS,
                {
                    "flow_number": flow_number,
                    "invoice_count": len(invoices),
                    "integrated_count": integrated,
                    "rejected_count": len(invoices) - integrated,
                    "ruleset_version": ruleset_version,
                },
            )
            return read_flow(conn, flow_number)

        return await self._write_flows(work, durable=False)

    async def flow_findings(self, flow_number: str) -> list[Finding]:
        return [finding_from_row(r) for r in await self._fetch(sql.FLOW_FINDINGS, {"flow_number": flow_number})]

    async def invoices(self, flow_number: str) -> list[InvoiceOutcome]:
        rows = await self._fetch(sql.INVOICES_WITH_FINDINGS, {"flow_number": flow_number})
        heads: dict[int, sqlite3.Row] = {}
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
        rows = await self._fetch(sql.GET_RULESET_VERSION, {"flow_number": flow_number})
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    async def add_return_flow(self, flow_number: str, name: str) -> None:
        """Record a return flow file name on the flow (idempotent: a name is recorded once)."""
        async with self._write() as conn:
            await conn.execute(sql.ADD_RETURN_FLOW, {"flow_number": flow_number, "name": name})
            if not list(await conn.execute_fetchall(sql.FLOW_EXISTS, {"flow_number": flow_number})):
                raise FlowNotFound(flow_number)

    async def report_inputs(self, flow_numbers: Sequence[str]) -> dict[str, ReportInputs]:
        """The report inputs of many flows in one read transaction (``sqlite_outbox``)."""
        if not flow_numbers:
            return {}
        async with self._read(snapshot=True) as conn:
            return await sqlite_outbox.report_inputs(conn, list(flow_numbers))

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record several return flows in one durable transaction (see the port)."""

        def work(conn: sqlite3.Connection) -> None:
            for flow_number, name in pairs:
                conn.execute(sql.ADD_RETURN_FLOW, {"flow_number": flow_number, "name": name})
                if conn.execute(sql.FLOW_EXISTS, {"flow_number": flow_number}).fetchone() is None:
                    raise FlowNotFound(flow_number)

        if pairs:
            await self._write_flows(work)

    async def pending_return_flows(self, limit: int = 100) -> list[FlowRecord]:
        """EDI flows in a final status whose integration report is not written (``sqlite_outbox``)."""
        return await sqlite_outbox.pending_return_flows(self._fetch, limit)

    async def all_flow_numbers(self) -> list[str]:
        """Every flow number, oldest first."""
        return [str(r[0]) for r in await self._fetch(sql.ALL_FLOW_NUMBERS, {})]

    # --- work queue ----------------------------------------------------------------------------
    async def claim(self, worker_id: str, *, now: datetime, lease_s: float) -> Claim | None:
        """Lease the oldest available unleased job to ``worker_id``; None when there is none."""
        params = {"now": to_db_time(now)}
        # Idle workers poll: once a claim found nothing, look on the reader first so an empty queue
        # never takes the write lock; while claims find work, that look would only cost a round trip.
        if self._queue_seen_empty and not await self._fetch(sql.ANY_CLAIMABLE, params):
            return None
        expires = utc(now) + timedelta(seconds=lease_s)

        def work(conn: sqlite3.Connection) -> Claim | None:
            rows = conn.execute(sql.NEXT_CLAIMABLE, params).fetchall()
            if not rows:
                return None
            row = rows[0]
            conn.execute(
                sql.LEASE_JOB,
                {
                    "flow_number": row["flow_number"],
                    "worker_id": worker_id,
                    "lease_expires_at": to_db_time(expires),
                },
            )
            return Claim(
                flow_number=str(row["flow_number"]),
                status=FlowStatus(row["status"]),
                attempts=int(row["attempts"]),
                lease_expires_at=expires,
                blob_key=str(row["blob_key"]),
                content=row["content"],
            )

        claim = await self._write_flows(work, durable=False)
        self._queue_seen_empty = claim is None
        return claim

    async def heartbeat(self, flow_number: str, worker_id: str, *, now: datetime, lease_s: float) -> bool:
        """Extend the lease to ``now + lease_s``; False when ``worker_id`` no longer holds it.

        A lease past its expiry but not yet recovered is still held (nobody else can claim it).
        """
        expires = to_db_time(utc(now) + timedelta(seconds=lease_s))
        params = {"flow_number": flow_number, "worker_id": worker_id, "lease_expires_at": expires}
        return await self._write_flows(lambda conn: conn.execute(sql.HEARTBEAT, params).rowcount == 1, durable=False)

    async def release(self, flow_number: str, worker_id: str) -> None:
        """Hand the job back (its status unchanged) without counting an attempt."""
        params = {"flow_number": flow_number, "worker_id": worker_id}
        await self._write_flows(lambda conn: conn.execute(sql.RELEASE, params), durable=False)

    async def recover_expired_leases(
        self, *, now: datetime, actor: str, max_attempts: int = 2, every_lease: bool = False
    ) -> list[Recovered]:
        """Count an attempt for every expired lease and move its flow (see the port).

        Below ``max_attempts`` the lease is cleared (an IN_PROGRESS flow goes back to
        WAITING_FOR_PROCESSING; a flow in an earlier status keeps it, reported with from == to); at
        ``max_attempts`` the flow is held in WAITING_FOR_REPROCESSING with a PROCESSING_INTERRUPTED
        finding and its job is removed.
        """
        expired_before = datetime.max.replace(tzinfo=UTC) if every_lease else now

        def work(conn: sqlite3.Connection) -> list[Recovered]:
            recovered: list[Recovered] = []
            rows = conn.execute(sql.EXPIRED_LEASES, {"now": to_db_time(expired_before)}).fetchall()
            for row in rows:
                number, status, attempts = (
                    str(row["flow_number"]),
                    FlowStatus(row["status"]),
                    int(row["attempts"]) + 1,
                )
                if attempts >= max_attempts:
                    detail = f"lease expired {attempts} times"
                    to = set_status(conn, number, status, FlowEvent.HOLD, at=now, actor=actor, detail=detail)
                    add_flow_finding(conn, number, catalogue.finding("PROCESSING_INTERRUPTED"))
                else:
                    conn.execute(sql.CLEAR_EXPIRED_LEASE, {"flow_number": number, "attempts": attempts})
                    to = status
                    if status is S.IN_PROGRESS:
                        to = set_status(
                            conn,
                            number,
                            status,
                            FlowEvent.LEASE_EXPIRED,
                            at=now,
                            actor=actor,
                            detail="lease expired",
                        )
                recovered.append(Recovered(number, status, to))
            return recovered

        return await self._write_flows(work, durable=False)

    # --- singletons ----------------------------------------------------------------------------
    async def try_singleton(self, name: str) -> bool:
        """Always True while open: one process owns a SQLite file, so it holds every singleton."""
        return self._writer is not None

    async def release_singleton(self, name: str) -> None:
        return None

    async def queue_depth(self) -> int:
        """Flows with a job: not yet judged, leased or not."""
        rows = await self._fetch(sql.QUEUE_DEPTH, {})
        return int(rows[0][0])

    async def wait_for_work(self, timeout_s: float) -> None:
        """A short sleep (SQLite has no notifications; in-process deposits wake the pool directly)."""
        await asyncio.sleep(min(max(timeout_s, 0.0), WORK_POLL_S))

    # --- directory -----------------------------------------------------------------------------
    async def import_directory(self, data: DirectoryData) -> None:
        """Upsert every entry of ``data`` in one transaction (entries not in ``data`` are kept)."""
        async with self._write() as conn:
            await directory_sql.import_directory(conn, data)

    async def snapshot(self, sirets: Iterable[str]) -> DirectorySnapshot:
        async with self._read() as conn:
            return DirectorySnapshot(await directory_sql.load_structures(conn, sirets))

    async def get_structure(self, siret: str) -> Structure | None:
        async with self._read() as conn:
            return (await directory_sql.load_structures(conn, [siret])).get(siret)

    async def get_partner(self, code: str) -> Partner | None:
        async with self._read(snapshot=True) as conn:
            return await directory_sql.load_partner(conn, code)

    async def integrated_invoice_flows(
        self, supplier_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """For ``(year, number)`` keys of one supplier, the oldest flow that integrated each one."""
        wanted = sorted({(year, number) for year, number in keys})
        if not wanted:
            return {}
        params = {"supplier_id": supplier_id, "keys": json.dumps(wanted)}
        found: dict[tuple[str, str], str] = {}
        for row in await self._fetch(sql.INTEGRATED_INVOICE_FLOWS, params):
            found.setdefault((str(row["issue_year"]), str(row["number"])), str(row["flow_number"]))
        return found
