"""``PostgresStore``: the ``engine.store.port.Store`` on PostgreSQL (asyncpg), for scale-out: several
daemons on several machines share one database and behave as one system.

Reads, the directory, administration, lockouts and monitoring are ``SqlStore``'s, on a
``PostgresDatabase`` (its pool). What this class does its own way:

* Every write is one transaction (``postgres_db.PgTransaction``) that ends with the counter deltas and the
  status events; ``durable`` means committed, with PostgreSQL's default ``synchronous_commit = on``.
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

import contextvars
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from engine import catalogue
from engine.errors import AlreadyExists, FlowNotFound, InvoiceAlreadyIntegrated, StoreUnavailable
from engine.flownumber import format_flow_number
from engine.model import FlowRecord, Severity
from engine.status import FlowEvent, FlowStatus
from engine.store import sql_flows as sql
from engine.store.port import Claim, NewFlow, Recovered
from engine.store.postgres_db import READER, PgTransaction, PostgresDatabase, is_unique_violation
from engine.store.postgres_listen import Listener
from engine.store.postgres_singletons import Singletons
from engine.store.postgres_status import (
    FINDING_COLUMNS,
    INVOICE_COLUMNS,
    add_flow_finding,
    append_events,
    records,
    set_status,
)
from engine.store.rows import claim_from_row, utc
from engine.store.sql_store import SqlStore
from engine.store.writes import Change, Verdict

S = FlowStatus

INVOICES_UNIQUE = "invoices_integrated"  # the unique index: one integration per (supplier, year, number)

# Per task: the work-notification generation seen when it last tried to claim (see wait_for_work).
_CLAIM_GENERATION: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("claim_generation")


class PostgresStore(SqlStore):
    """The scale-out store (see the module docstring)."""

    _db: PostgresDatabase

    def __init__(self, url: str, *, pool_min: int = 2, pool_max: int = 10) -> None:
        super().__init__(PostgresDatabase(url, pool_min=pool_min, pool_max=pool_max))
        self.url = url
        self.pool_min = pool_min
        self.pool_max = pool_max
        self._listener = Listener(url, (sql.WORK_CHANNEL, sql.EVENTS_CHANNEL))
        self._singletons = Singletons(url)

    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the pool, apply pending migrations (under the migration advisory lock), LISTEN."""
        await self._db.open()
        await self._listener.ensure()

    async def close(self) -> None:
        """Close the singletons' and listener's connections and the pool (bounded: ``PostgresDatabase``)."""
        await self._singletons.close()
        await self._listener.close()
        await self._db.close()

    # --- flows ---------------------------------------------------------------------------------
    async def create_flow(self, new: NewFlow) -> FlowRecord:
        """Allocate the number and insert flow + first event + job in one committed transaction.

        Raises ``AlreadyExists`` when the depositor already has a flow with ``new.tracking_id`` (the
        unique index decides under concurrency, across daemons).
        """
        deposited_at = utc(new.deposited_at)
        async with self._db.write() as tx:
            seq = int(await tx.value(sql.NEXT_FLOW_SEQ))
            number = format_flow_number(new.number_prefix, new.syntax.interface_number, seq)
            row = {
                "seq": seq,
                "flow_number": number,
                "file_name": new.file_name,
                "syntax": new.syntax.value,
                "declared_syntax": new.declared_syntax,
                "channel": new.channel.value,
                "issuer_siret": new.issuer_siret,
                "depositor": new.depositor,
                "status": S.RECEIVED.code,
                "deposited_at": deposited_at,
                "sha256": new.sha256,
                "size_bytes": new.size_bytes,
                "blob_key": new.blob_key,
                "tracking_id": new.tracking_id,
                "partner_code": new.partner_code,
            }
            try:
                inserted = await tx.rows(sql.INSERT_FLOW, row)
            except asyncpg.UniqueViolationError as exc:
                if is_unique_violation(exc, "flows_tracking"):
                    raise AlreadyExists(
                        f"{new.depositor} already deposited a flow with tracking id {new.tracking_id!r}"
                    ) from exc
                raise
            tx.count_flow(new.issuer_siret, deposited_at, new.syntax.value, S.RECEIVED.code, +1)
            await append_events(tx, number, [(S.RECEIVED, None)], at=deposited_at, actor=new.depositor, detail=None)
            await tx.execute(sql.ENSURE_JOB, {"flow_number": number, "available_at": deposited_at})
            if new.content is not None:
                await tx.execute(sql.INSERT_CONTENT, {"flow_number": number, "content": new.content})
            return READER.flow(inserted[0])

    async def _record(self, change: Change, verdict: Verdict | None) -> FlowRecord:
        """Raises ``InvoiceAlreadyIntegrated`` (nothing written) when another flow integrated one of the
        verdict's invoices since it was judged: the caller judges the flow again."""
        async with self._db.write() as tx:
            moved = await set_status(tx, change)
            return moved if verdict is None else await self._replace_verdict(tx, moved, verdict)

    async def _replace_verdict(self, tx: PgTransaction, flow: FlowRecord, verdict: Verdict) -> FlowRecord:
        """Write the verdict of ``flow`` (as its status update returned it) and count its errors."""
        number, issuer, deposited_at, syntax = flow.flow_number, flow.issuer_siret, flow.deposited_at, flow.syntax.value
        for old in await tx.rows(sql.DELETE_FINDINGS, {"flow_number": number}):
            if old["severity"] == Severity.ERROR.value:
                tx.count_error(issuer, deposited_at, syntax, str(old["code"]), old["rule"], -1)
        await tx.execute(sql.DELETE_INVOICES, {"flow_number": number})
        try:
            await tx.copy("invoices", records(verdict.invoice_rows(number), INVOICE_COLUMNS), INVOICE_COLUMNS)
        except asyncpg.UniqueViolationError as exc:
            if is_unique_violation(exc, INVOICES_UNIQUE):
                raise InvoiceAlreadyIntegrated(number) from exc
            raise
        findings = verdict.finding_rows(number)
        await tx.copy("findings", records(findings, FINDING_COLUMNS), FINDING_COLUMNS)
        for f in findings:
            if f["severity"] == Severity.ERROR.value:
                tx.count_error(issuer, deposited_at, syntax, f["code"], f["rule"], +1)
        return READER.flow((await tx.rows(sql.SET_VERDICT_COUNTS, verdict.counts(number)))[0])

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record several return flows in one transaction (see the port)."""
        if not pairs:
            return
        async with self._db.write() as tx:
            for flow_number, name in pairs:
                if not await tx.value(sql.ADD_RETURN_FLOW, {"flow_number": flow_number, "name": name}):
                    raise FlowNotFound(flow_number)

    # --- work queue ----------------------------------------------------------------------------
    async def claim(self, worker_id: str, *, now: datetime, lease_s: float) -> Claim | None:
        """Lease the oldest available unleased job to ``worker_id``; None when there is none."""
        _CLAIM_GENERATION.set((id(self), self._listener.generation[sql.WORK_CHANNEL]))
        expires = utc(now) + timedelta(seconds=lease_s)
        async with self._db.read() as conn:
            rows = await conn.rows(sql.CLAIM, {"now": now, "worker_id": worker_id, "lease_expires_at": expires})
        if not rows:
            return None
        return claim_from_row(rows[0], expires)

    async def heartbeat(self, flow_number: str, worker_id: str, *, now: datetime, lease_s: float) -> bool:
        """Extend the lease to ``now + lease_s``; False when ``worker_id`` no longer holds it."""
        expires = utc(now) + timedelta(seconds=lease_s)
        params = {"flow_number": flow_number, "worker_id": worker_id, "lease_expires_at": expires}
        async with self._db.read() as conn:
            return await conn.execute(sql.HEARTBEAT, params) == 1

    async def release(self, flow_number: str, worker_id: str) -> None:
        """Hand the job back (its status unchanged) without counting an attempt."""
        async with self._db.read() as conn:
            await conn.execute(sql.RELEASE, {"flow_number": flow_number, "worker_id": worker_id})

    async def recover_expired_leases(
        self, *, now: datetime, actor: str, max_attempts: int = 2, every_lease: bool = False
    ) -> list[Recovered]:
        """Count an attempt for every expired lease and move its flow (see the port and SQLite)."""
        recovered: list[Recovered] = []
        expired_before = datetime.max.replace(tzinfo=UTC) if every_lease else now
        async with self._db.write() as tx:
            for row in await tx.rows(sql.EXPIRED_LEASES, {"now": expired_before}):
                number, status = str(row["flow_number"]), FlowStatus(row["status"])
                attempts = int(row["attempts"]) + 1
                to = status
                if attempts >= max_attempts:
                    hold = Change(number, status, (FlowEvent.HOLD,), now, actor, f"lease expired {attempts} times")
                    to = (await set_status(tx, hold)).status
                    await add_flow_finding(tx, number, catalogue.finding("PROCESSING_INTERRUPTED"))
                else:
                    await tx.execute(sql.CLEAR_EXPIRED_LEASE, {"flow_number": number, "attempts": attempts})
                    if status is S.IN_PROGRESS:
                        back = Change(number, status, (FlowEvent.LEASE_EXPIRED,), now, actor, "lease expired")
                        to = (await set_status(tx, back)).status
                recovered.append(Recovered(number, status, to))
        return recovered

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a job may have been enqueued (by any daemon) since this task's last claim, or
        after ``timeout_s``. A hint: the caller claims again."""
        listener = self._listener
        await listener.ensure()
        fut = listener.waiter(sql.WORK_CHANNEL)
        seen = _CLAIM_GENERATION.get(None)
        if seen is not None and seen[0] == id(self) and listener.generation[sql.WORK_CHANNEL] > seen[1]:
            fut.cancel()  # a work NOTIFY arrived after this task's last claim began: it may have missed it
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
