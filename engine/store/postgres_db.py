"""PostgreSQL plumbing for ``PostgresStore``: error wrapping, connections as an ``engine.store.database.Database``
(``PostgresDatabase``), write transactions, numbered migrations.

Invariants:

* Driver errors leave this package only through ``wrap()``, as ``engine.errors.StoreError`` children with
  the driver error as ``__cause__``. A lost or refused connection (server down, restarting, shutting
  down, too many clients) is ``StoreUnavailable`` whose message says the database is unreachable.
* Statements are named (``engine.store.sql``): ``PgConnection`` binds them by position (asyncpg's
  ``$n``), encoding datetimes as aware UTC and lists as arrays.
* A write transaction (``PgTransaction``) buffers the status events it appends and the counter deltas it
  makes, and writes them with ``COMMIT`` (``PgTransaction.commit``): stage them (no lock taken), then ONE
  message runs ``fluxdepot_flush()`` (counters, then the events under the feed counter's row lock,
  migration 0003) and ``COMMIT``, so no hot row stays locked across a round trip to this process.
* Migrations are the files ``migrations/postgres/NNNN_name.sql``, applied in order under a session-level
  advisory lock (two daemons starting together run them once, one after the other), each in its own
  transaction together with its ``schema_migrations`` row. A database migrated by a newer fluxdepot is
  refused rather than misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from engine.errors import StorageFull, StoreError, StoreUnavailable
from engine.store import postgres_counters as counters
from engine.store import sql_flows
from engine.store.database import migration_files
from engine.store.rows import RowReader, utc
from engine.store.sql import NO_PARAMS, Params, Positional, Statement, both
from engine.store.writes import ChainedEvent

# Advisory lock keys (one bigint namespace per database). Arbitrary but fixed: 'fxd' + purpose.
MIGRATION_LOCK_KEY = 0x66786400_00000001

_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_LOCK = both("SELECT pg_advisory_lock(:key)")
_UNLOCK = both("SELECT pg_advisory_unlock(:key)")
_APPLIED = both("SELECT version FROM schema_migrations ORDER BY version")
_RECORD = both("INSERT INTO schema_migrations (version, name) VALUES (:version, :name)")
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"  # the Where statements (engine.store.sql)
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 5.0


# SQLSTATEs meaning "the server is not there for us right now" (class 08 is matched by prefix).
_UNAVAILABLE_STATES = {
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down)
    "53300",  # too_many_connections
    "25006",  # read_only_sql_transaction (a standby answered: not our primary)
}
_FULL_STATES = {"53100"}  # disk_full

# InternalClientError: a pooled connection left mid-operation by a connection lost under it (asyncpg).
DriverError = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


def unreachable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the database is unreachable: {type(exc).__name__}: {exc}")


def translate(exc: BaseException) -> StoreError:
    """The ``engine.errors`` type for a driver error (the caller chains it as ``__cause__``)."""
    state = str(getattr(exc, "sqlstate", "") or "")
    if isinstance(exc, (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InternalClientError)):
        return unreachable(exc)
    if state.startswith("08") or state in _UNAVAILABLE_STATES:
        return unreachable(exc)
    if state in _FULL_STATES:
        return StorageFull()
    if isinstance(exc, asyncpg.InterfaceError) and (
        "closed" in str(exc) or "closing" in str(exc) or "released" in str(exc)
    ):
        return unreachable(exc)
    return StoreError(f"the store failed: {type(exc).__name__}: {exc}")


@contextmanager
def wrap() -> Iterator[None]:
    """Turn driver errors raised inside the block into ``engine.errors`` types (once: engine errors
    raised inside pass through untouched)."""
    try:
        yield
    except DriverError as exc:
        raise translate(exc) from exc


async def end_open_transaction(conn: Any) -> None:
    """The pool's reset on release, replacing the driver's default reset query (``RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()``, one more round trip per release) for session state the pool's
    connections never take: LISTEN and session advisory locks live on dedicated connections
    (``postgres_listen``, ``postgres_singletons``; ``migrate`` unlocks its own), settings and cursors are
    transaction-local (``SET LOCAL``). The driver rolls back a transaction left open before calling this;
    the check below only keeps that true should it stop doing so."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def is_unique_violation(exc: BaseException, constraint: str) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == constraint


def from_db_time(value: datetime) -> datetime:
    return value.astimezone(UTC)


READER = RowReader(time=from_db_time, names=lambda names: names)  # timestamptz: aware; text[]: a list


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _args(statement: Positional, params: Params) -> tuple[Any, ...]:
    return tuple(_value(value) for value in statement.args(params))


def _rowcount(status: str) -> int:
    """The row count of a command status (``UPDATE 1``, ``INSERT 0 1``); 0 for commands without one."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgConnection:
    """``engine.store.database.Connection`` on an asyncpg connection the caller holds (outside a
    transaction, each statement commits by itself)."""

    decode = READER

    def __init__(self, conn: Any) -> None:
        self.conn = conn  # asyncpg.Connection (untyped driver)

    async def rows(self, statement: Statement, params: Params = NO_PARAMS) -> list[Any]:
        bound = statement.postgres_positional()
        return [] if bound is None else list(await self.conn.fetch(bound.text, *_args(bound, params)))

    async def value(self, statement: Statement, params: Params = NO_PARAMS) -> Any:
        bound = statement.postgres_positional()
        return None if bound is None else await self.conn.fetchval(bound.text, *_args(bound, params))

    async def execute(self, statement: Statement, params: Params = NO_PARAMS) -> int:
        bound = statement.postgres_positional()
        return 0 if bound is None else _rowcount(await self.conn.execute(bound.text, *_args(bound, params)))

    async def execute_many(self, statement: Statement, params: Sequence[Params]) -> None:
        bound = statement.postgres_positional()
        if bound is not None and params:
            await self.conn.executemany(bound.text, [_args(bound, p) for p in params])


@dataclass
class PgTransaction(PgConnection):
    """One write transaction (``engine.store.database.Transaction``): its connection; the events and
    counter deltas it writes with ``commit``."""

    conn: Any
    events: list[ChainedEvent] = field(default_factory=list)
    counts: counters.Deltas = field(default_factory=counters.Deltas)

    def count_flow(self, issuer: str, deposited_at: datetime, syntax: str, status: str, n: int) -> None:
        self.counts.flow(issuer, deposited_at, syntax, status, n)

    def count_error(
        self, issuer: str, deposited_at: datetime, syntax: str, code: str, rule: str | None, n: int
    ) -> None:
        self.counts.error(issuer, deposited_at, syntax, code, rule, n)

    def last_pending(self, flow_number: str) -> ChainedEvent | None:
        for ev in reversed(self.events):
            if ev.flow_number == flow_number:
                return ev
        return None

    async def copy(self, table: str, records: list[tuple[Any, ...]], columns: Sequence[str]) -> None:
        if records:
            await self.conn.copy_records_to_table(table, records=records, columns=columns)

    async def commit(self) -> None:
        """Stage the counter deltas and events, then flush them and ``COMMIT`` in one message."""
        body = counters.payload(self.counts)
        body["ev"] = [
            [e.flow_number, e.seq, e.status, e.event, e.at.isoformat(), e.actor, e.detail, e.prev_hash, e.hash]
            for e in self.events
        ]
        if any(body.values()):
            await self.execute(sql_flows.STAGE_FLUSH, {"payload": json.dumps(body, separators=(",", ":"))})
            await self.execute(sql_flows.FLUSH_AND_COMMIT)
        else:
            await self.conn.execute("COMMIT")


class PostgresDatabase:
    """The connection pool of ``PostgresStore`` (``pool_min``..``pool_max``)."""

    def __init__(self, url: str, *, pool_min: int, pool_max: int) -> None:
        self.url = url
        self.pool_min = pool_min
        self.pool_max = pool_max
        self._pool: Any = None  # asyncpg.Pool once open

    async def open(self) -> None:
        """Create the pool and apply pending migrations (under the migration advisory lock)."""
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

    async def close(self) -> None:
        """Close the pool: waits up to ``CLOSE_TIMEOUT_S`` for connections in use to be released, then
        terminates the rest (a connection broken by a lost server may never be released)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                with wrap():
                    await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except StoreError:
                pool.terminate()

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        return self._pool

    @asynccontextmanager
    async def read(self, *, custom_plans: bool = False) -> AsyncIterator[PgConnection]:
        """A pooled connection for reads (one statement is one snapshot); ``custom_plans`` needs a
        transaction (``snapshot``)."""
        if custom_plans:
            async with self.snapshot(custom_plans=True) as conn:
                yield conn
            return
        pool = self._require_pool()
        with wrap():
            async with pool.acquire() as conn:
                yield PgConnection(conn)

    @asynccontextmanager
    async def snapshot(self, *, custom_plans: bool = False) -> AsyncIterator[PgConnection]:
        """A read-only REPEATABLE READ transaction: several statements see one snapshot. ``custom_plans``
        plans every statement for its actual parameters (``plan_cache_mode = force_custom_plan``)."""
        pool = self._require_pool()
        with wrap():
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                if custom_plans:
                    await conn.execute(_CUSTOM_PLANS)
                yield PgConnection(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[PgTransaction]:
        """One write transaction, ending with its counters and events sent together with ``COMMIT``;
        rolled back on any error; errors wrapped. Plain ``BEGIN``/``COMMIT`` rather than the driver's
        transaction object, because the commit rides in the flush's message."""
        pool = self._require_pool()
        with wrap():
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                try:
                    tx = PgTransaction(conn)
                    yield tx
                    await tx.commit()
                except BaseException:
                    if not conn.is_closed() and conn.is_in_transaction():
                        with contextlib.suppress(*DriverError):
                            await conn.execute("ROLLBACK")
                    raise


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    script: str


def load_migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations, in version order."""
    return [Migration(f.version, f.name, f.text) for f in migration_files("postgres")]


async def migrate(conn: Any) -> list[int]:
    """Apply pending migrations on ``conn`` under the migration advisory lock; return those applied now.

    The lock is session-level (held across the per-migration transactions) and always released, even
    when a migration fails (its transaction rolls back; the next opener retries it).
    """
    migrations = load_migrations()
    known = migrations[-1].version if migrations else 0
    applied_now: list[int] = []
    db = PgConnection(conn)
    await db.execute(_LOCK, {"key": MIGRATION_LOCK_KEY})
    try:
        await conn.execute(_CREATE_MIGRATIONS)
        applied = {int(r["version"]) for r in await db.rows(_APPLIED)}
        if applied and max(applied) > known:
            raise StoreError(f"the database schema is version {max(applied)}; this fluxdepot knows up to {known}")
        for mig in migrations:
            if mig.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(mig.script)
                await db.execute(_RECORD, {"version": mig.version, "name": mig.name})
            applied_now.append(mig.version)
    finally:
        if not conn.is_closed():
            await db.execute(_UNLOCK, {"key": MIGRATION_LOCK_KEY})
    return applied_now
