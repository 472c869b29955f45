"""SQLite plumbing for ``SqliteStore``: connections, transactions, error wrapping, numbered migrations.

Invariants:

* Every connection runs in WAL mode with ``synchronous=FULL`` (a commit is on disk when it returns),
  foreign keys on and a busy timeout; a write transaction may ask for ``synchronous=NORMAL`` instead
  (``transaction(durable=False)``: the commit survives a crash of the process, not a power loss; the
  next FULL commit or checkpoint syncs it), in autocommit mode: transactions are explicit
  (``BEGIN IMMEDIATE`` for writes, so a writer takes SQLite's lock up front and never fails mid-way on
  a lock upgrade).
* ``ThreadConnection`` runs a whole write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK``
  on any error) as ONE call into the one thread that owns its plain ``sqlite3`` connection, instead of
  one event-loop round trip per statement. A caller cancelled meanwhile waits for that call to end, and
  the transaction is then rolled back unless it had already committed (as with a per-statement one).
* Driver errors leave this package only through ``wrap()``, as ``engine.errors.StoreError`` children
  with the ``sqlite3`` error as ``__cause__``.
* Migrations are the files ``migrations/sqlite/NNNN_name.sql``, applied in order, each in its own
  transaction together with its ``schema_migrations`` row; applying them twice is a no-op, and a
  database migrated by a newer fluxdepot is refused rather than misread.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiosqlite

from engine.errors import StorageFull, StoreError, StoreUnavailable
from engine.store.database import migration_files

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0
# A long statement's ``progress`` callback runs every this many SQLite VM steps (about a millisecond).
PROGRESS_STEPS = 100_000

PRAGMAS = (
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)
# Connections that write keep their statement journals in memory: past 64 KiB SQLite spills one to a
# file it creates and unlinks in /var/tmp, in every batch of deposits once the b-trees are a few levels
# deep (~40 writes more). Readers keep the default: their big sorts and temporary b-trees may spill.
WRITER_PRAGMAS = (*PRAGMAS, "PRAGMA temp_store = MEMORY")
_SET_WAL = "PRAGMA journal_mode = WAL"
_SYNC_FULL = "PRAGMA synchronous = FULL"
_SYNC_NORMAL = "PRAGMA synchronous = NORMAL"
_WAL_RETRY_S = 0.05

_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""
_APPLIED = "SELECT version FROM schema_migrations WHERE version = :version"
_MAX_APPLIED = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :applied_at)"


# sqlite3 primary result codes (the low byte of an extended code).
_FULL_CODES = {sqlite3.SQLITE_FULL}
_UNAVAILABLE_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN}


def translate(exc: sqlite3.Error) -> StoreError:
    """The ``engine.errors`` type for a driver error (the caller chains it as ``__cause__``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _FULL_CODES or "database or disk is full" in str(exc):
        return StorageFull()
    if primary in _UNAVAILABLE_CODES:
        return StoreUnavailable(f"the store is unavailable: {exc}")
    return StoreError(f"the store failed: {exc}")


@contextmanager
def wrap() -> Iterator[None]:
    """Turn ``sqlite3`` errors raised inside the block into ``engine.errors`` types."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc) from exc


async def connect(path: str, *, read_only: bool = False) -> aiosqlite.Connection:
    """Open one connection with the store's pragmas (``read_only`` sets ``query_only``)."""
    conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await _ensure_wal(conn)
        for pragma in PRAGMAS if read_only else WRITER_PRAGMAS:
            await conn.execute(pragma)
        if read_only:
            await conn.execute("PRAGMA query_only = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _ensure_wal(conn: aiosqlite.Connection) -> None:
    """Switch the file to WAL (persistent; a no-op once done). Switching needs an exclusive lock and
    SQLite does not call the busy handler for it, so first openers of a new file retry here."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_S
    while True:
        failure: sqlite3.OperationalError | None = None
        try:
            rows = list(await conn.execute_fetchall(_SET_WAL))
            if str(rows[0][0]).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            failure = exc
        if loop.time() > deadline:
            if failure is not None:
                raise failure
            raise StoreError("the database cannot be switched to WAL mode")
        await asyncio.sleep(_WAL_RETRY_S)


async def _rollback(conn: aiosqlite.Connection) -> None:
    # SQLite may already have rolled back (e.g. after SQLITE_FULL): "no transaction is active" is fine.
    with suppress(sqlite3.Error):
        await conn.execute("ROLLBACK")


@dataclass
class SyncSetting:
    """The ``synchronous`` level a connection is set to, so it is changed only when it must be."""

    full: bool = True


@asynccontextmanager
async def transaction(
    conn: aiosqlite.Connection,
    lock: AbstractAsyncContextManager[Any],
    *,
    write: bool,
    durable: bool = True,
    sync: SyncSetting | None = None,
) -> AsyncIterator[aiosqlite.Connection]:
    """Hold ``lock`` and one transaction on ``conn``: committed on success, rolled back on any error.

    With ``sync`` (the connection's current level), the commit is synced to disk (``FULL``) when
    ``durable``, else only written to the WAL (``NORMAL``). The level is set before ``BEGIN``.
    """
    async with lock:
        if sync is not None and sync.full != durable:
            await conn.execute(_SYNC_FULL if durable else _SYNC_NORMAL)
            sync.full = durable
        await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
            await conn.execute("COMMIT")
        except BaseException:
            await _rollback(conn)
            raise


# A multi-row INSERT steps once per chunk instead of once per row (``executemany``): fewer statement steps,
# and on a thread fewer hand-overs of the GIL (each step releases and takes it back). The only statements
# whose text is made at run time: a constant row of ``?`` repeated ``count`` times, from a row count,
# never from a value.
ROWS_PER_INSERT = 500  # x 16 columns stays far below SQLite's 32,766 bound parameters


@functools.cache
def _rows_statement(head: str, row: str, count: int, tail: str) -> str:
    return head + ", ".join([row] * count) + tail


def insert_rows(conn: sqlite3.Connection, head: str, row: str, values: Sequence[Any], tail: str = "") -> None:
    """Insert the rows laid out one after the other in ``values`` (as many values each as ``row`` has
    ``?``), at most ``ROWS_PER_INSERT`` rows per statement."""
    width = row.count("?")
    step = width * ROWS_PER_INSERT
    for start in range(0, len(values), step):
        chunk = values[start : start + step]
        conn.execute(_rows_statement(head, row, len(chunk) // width, tail), chunk)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction on a plain ``sqlite3`` connection: committed when the block
    returns, rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back (e.g. after SQLITE_FULL): that error is fine.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


class _Abandoned(Exception):
    """The caller was cancelled before COMMIT: the transaction is rolled back."""


def connect_writer(path: str) -> sqlite3.Connection:
    """A plain ``sqlite3`` connection that writes, with the store's pragmas: the writer thread's
    (``ThreadConnection``) and the deposits' writer process's (``sqlite_flow_writer``)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in WRITER_PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


class ThreadConnection:
    """A plain ``sqlite3`` connection owned by one dedicated thread, for write transactions run as one
    call each (``transaction``). Open it on a file already in WAL mode (``connect`` switched it)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._sync = SyncSetting()  # _connect sets synchronous=FULL

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        return connect_writer(self._path)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def transaction(
        self, lock: AbstractAsyncContextManager[Any], work: Callable[[sqlite3.Connection], T], *, durable: bool = True
    ) -> T:
        """Hold ``lock`` and run ``work`` in one write transaction, in one call to the thread: committed
        (synced to disk when ``durable``, see ``transaction()``) if ``work`` returns, else rolled back."""
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("the store is not open")
        abandoned = threading.Event()

        def run() -> T:
            if self._sync.full != durable:
                conn.execute(_SYNC_FULL if durable else _SYNC_NORMAL)
                self._sync.full = durable
            with write_transaction(conn):
                result = work(conn)
                if abandoned.is_set():
                    raise _Abandoned
            return result

        async with lock:
            future = asyncio.get_running_loop().run_in_executor(self._executor, run)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                abandoned.set()
                await asyncio.wait([future])  # the lock is held until the connection is done
                if not future.cancelled():
                    future.exception()  # retrieved: _Abandoned or the transaction's own error
                raise


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """Split a SQL script into complete statements (comment-only leftovers are dropped)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return tuple(statements)


def load_migrations() -> list[Migration]:
    """The packaged SQLite migrations, in version order."""
    return [Migration(f.version, f.name, split_statements(f.text)) for f in migration_files("sqlite")]


async def migrate(
    conn: aiosqlite.Connection, lock: AbstractAsyncContextManager[Any], progress: Callable[[], None] | None = None
) -> list[int]:
    """Apply pending migrations; return the versions applied now. Safe against a concurrent opener.
    ``progress`` is called from time to time while they run (an index built over a big store takes
    seconds: ~1.8 s per index at 1,000,000 flows)."""
    if progress is not None:
        await conn.set_progress_handler(lambda: progress() or 0, PROGRESS_STEPS)  # 0: go on
    try:
        return await _migrate(conn, lock)
    finally:
        if progress is not None:
            await conn.set_progress_handler(None, 0)  # type: ignore[arg-type]  # sqlite3: None removes it


async def _migrate(conn: aiosqlite.Connection, lock: AbstractAsyncContextManager[Any]) -> list[int]:
    migrations = load_migrations()
    known = migrations[-1].version if migrations else 0
    applied_now: list[int] = []
    async with lock:
        await conn.execute(_CREATE_MIGRATIONS)
        rows = list(await conn.execute_fetchall(_MAX_APPLIED))
    if int(rows[0][0]) > known:
        raise StoreError(f"the database schema is version {rows[0][0]}; this fluxdepot knows up to {known}")
    for mig in migrations:
        async with transaction(conn, lock, write=True):
            # Checked inside the write transaction: another process may have applied it meanwhile.
            if list(await conn.execute_fetchall(_APPLIED, {"version": mig.version})):
                continue
            for statement in mig.statements:
                await conn.execute(statement)
            await conn.execute(
                _RECORD,
                {"version": mig.version, "name": mig.name, "applied_at": datetime.now(UTC).isoformat()},
            )
            applied_now.append(mig.version)
    return applied_now
