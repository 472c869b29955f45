"""A store opened for reading only, beside a daemon that may be running (``fluxdepot admin replay``).

``open_read_only(url)`` gives ``SqlStore``'s reads (flows, verdicts, directory, search) and nothing that
writes: its ``write()`` raises. Invariants:

* SQLite: one connection opened with ``mode=ro`` (the file cannot be written through it) and
  ``query_only``; no migration runs, no WAL switch, no data-folder lock is taken: WAL lets it read while
  the daemon writes. Each read is one snapshot (as the daemon's own reader).
* PostgreSQL: a small pool whose sessions are ``default_transaction_read_only``; no migration runs.
* The schema must be the one this fluxdepot knows (its last migration applied): an older store is
  refused with ``StoreError`` saying to migrate it (the daemon does at start), a newer one is not read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.request import pathname2url

import aiosqlite
import asyncpg

from engine.errors import StoreError, StoreUnavailable
from engine.model import FlowRecord
from engine.store import postgres_db, sqlite_path
from engine.store.database import Connection, Database, migration_files
from engine.store.sql import both
from engine.store.sql_store import SqlStore
from engine.store.sqlite_database import SqliteConnection
from engine.store.sqlite_db import BUSY_TIMEOUT_S, transaction, wrap
from engine.store.writes import Change, Verdict

_SCHEMA_VERSION = both("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")


class ReadOnly(StoreError):
    """This store was opened for reading only."""


def _refuse() -> NoReturn:
    raise ReadOnly("the store is open for reading only")


class ReadOnlySqlite:
    """``engine.store.database.Database`` on one read-only SQLite connection (module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        file = await asyncio.to_thread(Path(self.path).resolve)
        if not await asyncio.to_thread(file.is_file):
            raise StoreUnavailable(f"no store at {file}")
        with wrap():
            conn = await aiosqlite.connect(
                f"file:{pathname2url(str(file))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
            try:
                conn.row_factory = sqlite3.Row
                await conn.execute("PRAGMA query_only = ON")
            except BaseException:
                await conn.close()
                raise
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with wrap():
                await conn.close()

    def _open_conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreUnavailable("the store is not open")
        return self._conn

    @asynccontextmanager
    async def read(self, *, custom_plans: bool = False) -> AsyncIterator[SqliteConnection]:
        conn = self._open_conn()
        with wrap():
            async with self._lock:
                yield SqliteConnection(conn)

    @asynccontextmanager
    async def snapshot(self, *, custom_plans: bool = False) -> AsyncIterator[SqliteConnection]:
        conn = self._open_conn()
        with wrap():
            async with transaction(conn, self._lock, write=False) as held:
                yield SqliteConnection(held)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        _refuse()
        yield  # pragma: no cover - unreachable


class ReadOnlyPostgres(postgres_db.PostgresDatabase):
    """``PostgresDatabase`` whose sessions refuse writes, opened without migrating (module docstring)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, pool_min=1, pool_max=2)

    async def open(self) -> None:
        with postgres_db.wrap():
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.pool_min,
                max_size=self.pool_max,
                timeout=postgres_db.CONNECT_TIMEOUT_S,
                command_timeout=postgres_db.COMMAND_TIMEOUT_S,
                reset=postgres_db.end_open_transaction,
                server_settings={"default_transaction_read_only": "on"},
            )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        _refuse()
        yield  # pragma: no cover - unreachable


class ReadOnlyStore(SqlStore):
    """``SqlStore``'s reads on a read-only ``Database``; every write raises ``ReadOnly``."""

    def __init__(self, db: Database, close: Any) -> None:
        super().__init__(db)
        self._close = close

    async def close(self) -> None:
        await self._close()

    async def _record(self, change: Change, verdict: Verdict | None) -> FlowRecord:
        _refuse()

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None:
        _refuse()


async def _check_schema(conn: Connection) -> None:
    known = max((m.version for m in migration_files(_dialect(conn))), default=0)
    found = int(await conn.value(_SCHEMA_VERSION) or 0)
    if found < known:
        raise StoreError(f"the store's schema is version {found}, this fluxdepot reads {known}: migrate it first")
    if found > known:
        raise StoreError(f"the store's schema is version {found}; this fluxdepot knows up to {known}")


def _dialect(conn: Connection) -> str:
    return "sqlite" if isinstance(conn, SqliteConnection) else "postgres"


async def open_read_only(url: str) -> ReadOnlyStore:
    """The store ``url`` names, opened for reading only (see the module docstring)."""
    if url.startswith(("postgresql://", "postgres://")):
        pg = ReadOnlyPostgres(url)
        await pg.open()
        store = ReadOnlyStore(pg, pg.close)
    elif url.startswith("sqlite:"):
        lite = ReadOnlySqlite(sqlite_path(url))
        await lite.open()
        store = ReadOnlyStore(lite, lite.close)
    else:
        raise ValueError(f"unsupported store URL {url!r}: expected sqlite:///PATH or postgresql://…")
    try:
        async with store._db.read() as conn:
            await _check_schema(conn)
    except BaseException:
        await store.close()
        raise
    return store
