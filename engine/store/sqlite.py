"""``SqliteStore``: the ``engine.store.port.Store`` on an embedded SQLite file, through aiosqlite.

Reads, the directory, administration, lockouts and monitoring are ``SqlStore``'s, on a
``SqliteDatabase`` (its connections and locks). What this class does its own way, as measured:

* New flows are committed by a child process, the deposits' writer (``sqlite_flow_writer``), so that
  their rows cost the event loop no GIL time; concurrent deposits are group-committed
  (``engine.store.group_commit``): they share one transaction and one fsync.
* The flows' other writes (status changes, verdicts, the work queue) run each transaction as one call
  into a writer thread (``SqliteDatabase.write_flows``): a round trip per statement would cost the event
  loop more than SQLite does. Status changes go through ``sqlite_status``.
* A claim reads its flow in the claim's own transaction (``Claim.flow``): the worker starts on it
  without a round trip to the reader.
* A worker's verdict is judged inside its own write transaction (``record_judged``): the directory
  entries and the earlier integrated invoices it needs are read there, on the writer thread, instead of
  two round trips to the reader before it. Verdicts are group-committed (``_verdict_writes``): those
  submitted while the writer thread is busy share the next transaction, each in its own savepoint, and
  each caller returns after that COMMIT (a transaction per flow cost a third more of SQLite's CPU than
  one per four, besides the round trips). Judging and recording under SQLite's one write lock also
  means no other flow can integrate the same invoice between the duplicate lookup and the verdict.

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
* ``claim`` leases only jobs nobody holds; an expired lease is first cleared by
  ``recover_expired_leases`` (which records the attempt and the status change), then claimable again.
* One process owns the file, so it holds every singleton. Other processes opening the same file are
  serialised by ``BEGIN IMMEDIATE`` plus the busy timeout.
* A path of ``:memory:`` is not supported (the two connections would see two databases).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from engine import catalogue
from engine.directory import DirectorySnapshot, Partner
from engine.errors import FlowNotFound
from engine.model import FlowRecord, FlowVerdict
from engine.status import ADMIN_EVENTS, FlowEvent, FlowStatus, walk
from engine.store import sql_directory
from engine.store import sql_flows as sql
from engine.store.directory_rows import partner_from_rows, structures_from_rows
from engine.store.group_commit import GroupCommit
from engine.store.port import Claim, NewFlow, Recovered
from engine.store.rows import claim_from_row, utc
from engine.store.sql_store import SqlStore
from engine.store.sqlite_database import SqliteDatabase, SqliteSync
from engine.store.sqlite_flow_writer import DepositWriter
from engine.store.sqlite_status import add_flow_finding, insert_findings, read_flow, set_statuses
from engine.store.wakeups import SqliteWorkWakeups
from engine.store.writes import Change, Verdict

S = FlowStatus
# (supplier, year, number) -> the flow that integrated that invoice first
Earlier = Mapping[tuple[str, str, str], str]
Judge = Callable[[DirectorySnapshot, Earlier], FlowVerdict]
Write = Callable[[SqliteSync], FlowRecord]  # one verdict, run in a shared transaction


POLL_S = 0.5  # wait_for_events re-reads the feed at least this often (commits of other processes)


class SqliteStore(SqlStore, SqliteWorkWakeups):
    """The default store: one SQLite file in WAL mode (see the module docstring). Wake-ups of idle
    workers and of the outbox are ``engine.store.wakeups``'s."""

    _db: SqliteDatabase

    def __init__(self, path: str) -> None:
        super().__init__(SqliteDatabase(path))
        self.path = path
        self._queue_seen_empty = True  # claim: look on the reader first (see claim)
        self._deposits = DepositWriter(self._db)  # the deposits' writer, a child process (module docstring)
        self._creates: GroupCommit[NewFlow, FlowRecord] = GroupCommit(self._deposits.commit)
        self._verdict_writes: GroupCommit[Write, FlowRecord] = GroupCommit(self._write_verdicts)

    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self, progress: Callable[[], None] | None = None) -> None:
        """Connect and apply pending migrations (calling ``progress`` while they run)."""
        await self._db.open(progress)

    async def close(self) -> None:
        """Wait for running transactions, then close the connections (the WAL is checkpointed)."""
        await self._creates.drain()
        await self._verdict_writes.drain()
        await self._db.close(before=self._deposits.close)

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
        try:
            return await self._creates.submit(new)
        finally:
            self._work_enqueued()  # a hint: idle workers claim again (a refused flow wakes them for nothing)

    async def _record(self, change: Change, verdict: Verdict | None) -> FlowRecord:
        """One call to the writer thread. Only operators' events are synced to disk at commit (module
        docstring)."""
        durable = verdict is None and any(e in ADMIN_EVENTS for e in change.events)
        return await self._db.write_flows(lambda db: _write(db, change, verdict), durable=durable)

    async def record_judged(
        self,
        flow_number: str,
        expected: FlowStatus,
        steps: Sequence[FlowEvent],
        judge: Judge,
        *,
        sirets: Collection[str],
        invoice_keys: Collection[tuple[str, str, str]],
        actor: str,
        at: datetime,
    ) -> FlowRecord:
        """Judge a checked flow and record its verdict in one write transaction (``engine.processing``):
        ``judge`` gets the directory entries of ``sirets`` and the flows that integrated invoices
        among ``invoice_keys`` (supplier, year, number) as they are in that transaction, and gives the
        verdict, recorded after ``steps`` from ``expected``. ``judge`` runs on the writer thread: it must
        be pure. Concurrent calls share a transaction (group commit); each returns after its COMMIT."""

        def work(db: SqliteSync) -> FlowRecord:
            return write_judged(
                db, flow_number, expected, steps, judge, sirets=sirets, invoice_keys=invoice_keys, actor=actor, at=at
            )

        return self._recorded(await self._verdict_writes.submit(work))

    async def _write_verdicts(self, batch: Sequence[Write]) -> list[FlowRecord | BaseException]:
        """Verdicts in one transaction, each under a savepoint: one that fails (a status conflict, a
        judging error) is that flow's outcome alone; a driver error fails the transaction."""

        def work(db: SqliteSync) -> list[FlowRecord | BaseException]:
            if len(batch) == 1:  # alone in its transaction: a failure rolls it back whole
                return [batch[0](db)]
            outcomes: list[FlowRecord | BaseException] = []
            for write in batch:
                db.conn.execute(_SAVEPOINT)
                try:
                    outcomes.append(write(db))
                except sqlite3.Error:
                    raise
                except Exception as exc:
                    db.conn.execute(_ROLLBACK_TO)
                    outcomes.append(exc)
                db.conn.execute(_RELEASE)
            return outcomes

        return await self._db.write_flows(work, durable=False)

    # --- the flows' pump (engine.pump): its own connection, in a thread -----------------------------
    @property
    def database(self) -> SqliteDatabase:
        return self._db

    def committed_elsewhere(self, flows: Sequence[FlowRecord]) -> None:
        """On the event loop, once the pump committed a transaction: wake the feed's waiters and, for the
        flows it changed, the outbox (``_recorded``)."""
        self._db.commits.notify()
        for flow in flows:
            self._recorded(flow)

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record several return flows in one durable transaction (see the port)."""

        def work(db: SqliteSync) -> None:
            for flow_number, name in pairs:
                db.execute(sql.ADD_RETURN_FLOW, {"flow_number": flow_number, "name": name})
                if not db.value(sql.FLOW_EXISTS, {"flow_number": flow_number}):
                    raise FlowNotFound(flow_number)

        if pairs:
            await self._db.write_flows(work)

    # --- work queue ----------------------------------------------------------------------------
    async def claim(self, worker_id: str, *, now: datetime, lease_s: float) -> Claim | None:
        """Lease the oldest available unleased job to ``worker_id``; None when there is none."""
        self._note_claim_attempt()
        # Idle workers poll: once a claim found nothing, look on the reader first so an empty queue
        # never takes the write lock; while claims find work, that look would only cost a round trip.
        if self._queue_seen_empty:
            async with self._db.read() as conn:
                if not await conn.rows(sql.ANY_CLAIMABLE, {"now": now}):
                    return None
        expires = utc(now) + timedelta(seconds=lease_s)
        # Not group-committed: a claim whose caller was cancelled is rolled back, never leased to nobody.
        claim = await self._db.write_flows(
            lambda db: claim_next(db, worker_id, now=now, expires=expires), durable=False
        )
        self._queue_seen_empty = claim is None
        return claim

    async def heartbeat(self, flow_number: str, worker_id: str, *, now: datetime, lease_s: float) -> bool:
        """Extend the lease to ``now + lease_s``; False when ``worker_id`` no longer holds it.

        A lease past its expiry but not yet recovered is still held (nobody else can claim it).
        """
        expires = utc(now) + timedelta(seconds=lease_s)
        params = {"flow_number": flow_number, "worker_id": worker_id, "lease_expires_at": expires}
        return await self._db.write_flows(lambda db: db.execute(sql.HEARTBEAT, params) == 1, durable=False)

    async def release(self, flow_number: str, worker_id: str) -> None:
        """Hand the job back (its status unchanged) without counting an attempt."""
        params = {"flow_number": flow_number, "worker_id": worker_id}
        await self._db.write_flows(lambda db: db.execute(sql.RELEASE, params), durable=False)

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

        def work(db: SqliteSync) -> list[Recovered]:
            recovered: list[Recovered] = []
            for row in db.rows(sql.EXPIRED_LEASES, {"now": expired_before}):
                number, status = str(row["flow_number"]), FlowStatus(row["status"])
                attempts = int(row["attempts"]) + 1
                to = status
                if attempts >= max_attempts:
                    hold = (FlowEvent.HOLD,)
                    to = set_statuses(db, Change(number, status, hold, now, actor, f"lease expired {attempts} times"))
                    add_flow_finding(db, number, catalogue.finding("PROCESSING_INTERRUPTED"))
                else:
                    db.execute(sql.CLEAR_EXPIRED_LEASE, {"flow_number": number, "attempts": attempts})
                    if status is S.IN_PROGRESS:
                        back = (FlowEvent.LEASE_EXPIRED,)
                        to = set_statuses(db, Change(number, status, back, now, actor, "lease expired"))
                recovered.append(Recovered(number, status, to))
            return recovered

        return await self._db.write_flows(work, durable=False)

    # --- singletons ----------------------------------------------------------------------------
    async def try_singleton(self, name: str) -> bool:
        """Always True while open: one process owns a SQLite file, so it holds every singleton."""
        return self._db.is_open

    async def release_singleton(self, name: str) -> None:
        return None

    # --- the event feed ------------------------------------------------------------------------
    async def wait_for_events(self, cursor: int, timeout_s: float) -> None:
        """Return once the feed is past ``cursor`` or ``timeout_s`` elapsed: woken by this process's
        commits, and re-reading the feed every ``POLL_S`` for other processes' commits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            signal = self._db.commits.current()
            if await self.latest_cursor() > cursor:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, POLL_S))


_SAVEPOINT = "SAVEPOINT verdict"
_ROLLBACK_TO = "ROLLBACK TO verdict"
_RELEASE = "RELEASE verdict"


def claim_next(db: SqliteSync, worker_id: str, *, now: datetime, expires: datetime) -> Claim | None:
    """In the caller's write transaction: lease the oldest available unleased job to ``worker_id`` until
    ``expires``, with its flow as it is (``SqliteStore.claim``)."""
    rows = db.rows(sql.NEXT_CLAIMABLE, {"now": now})
    if not rows:
        return None
    lease = {"flow_number": rows[0]["flow_number"], "worker_id": worker_id, "lease_expires_at": expires}
    db.execute(sql.LEASE_JOB, lease)
    claim = claim_from_row(rows[0], expires)
    return dataclasses.replace(claim, flow=read_flow(db, claim.flow_number))


def write_judged(
    db: SqliteSync,
    flow_number: str,
    expected: FlowStatus,
    steps: Sequence[FlowEvent],
    judge: Judge,
    *,
    sirets: Collection[str],
    invoice_keys: Collection[tuple[str, str, str]],
    actor: str,
    at: datetime,
) -> FlowRecord:
    """In the caller's write transaction: judge a checked flow on the directory and earlier invoices as
    they are there, and record its verdict after ``steps`` (``SqliteStore.record_judged``)."""
    rows = db.rows(sql_directory.STRUCTURES_WITH_SERVICES, {"sirets": sorted(set(sirets))})
    verdict = judge(DirectorySnapshot(structures_from_rows(rows)), _integrated(db, invoice_keys))
    change = Change(flow_number, expected, (*steps, verdict.event), at, actor)
    walk(expected, change.events)  # InvalidTransition before touching the flow
    recorded = Verdict(verdict.flow_findings, verdict.invoices, verdict.ruleset_version)
    return _write(db, change, recorded)


def read_partner(db: SqliteSync, code: str) -> Partner | None:
    """In the caller's transaction: a partner with its keys and rules (``get_partner``)."""
    heads = db.rows(sql_directory.GET_PARTNER, {"code": code})
    if not heads:
        return None
    keys = db.rows(sql_directory.PARTNER_KEYS, {"code": code})
    return partner_from_rows(heads[0], keys, db.rows(sql_directory.PARTNER_RULES, {"code": code}))


def _write(db: SqliteSync, change: Change, verdict: Verdict | None) -> FlowRecord:
    """``change`` and, when given, ``verdict`` in the writer thread's transaction; the flow as it is then."""
    set_statuses(db, change)
    if verdict is not None:
        number = change.flow_number
        db.execute(sql.DELETE_FINDINGS, {"flow_number": number})
        db.execute(sql.DELETE_INVOICES, {"flow_number": number})
        db.execute_many(sql.INSERT_INVOICE, verdict.invoice_rows(number))
        insert_findings(db, verdict.finding_rows(number))
        db.execute(sql.SET_VERDICT_COUNTS, verdict.counts(number))
    return read_flow(db, change.flow_number)


def _integrated(db: SqliteSync, invoice_keys: Collection[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """The oldest flow that integrated each of ``invoice_keys`` (as ``FlowReads.integrated_invoice_flows``
    per supplier)."""
    by_supplier: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for supplier, year, number in invoice_keys:
        by_supplier[supplier].add((year, number))
    earlier: dict[tuple[str, str, str], str] = {}
    for supplier, keys in by_supplier.items():
        params = {"supplier_id": supplier, "keys": [list(key) for key in sorted(keys)]}
        for row in db.rows(sql.INTEGRATED_INVOICE_FLOWS, params):
            key = (supplier, str(row["issue_year"]), str(row["number"]))
            earlier.setdefault(key, str(row["flow_number"]))
    return earlier
