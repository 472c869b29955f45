"""``SqliteDatabase``: the SQLite store's connections and locks, as an ``engine.store.database.Database``.

Connections: writers sharing one ``WriteLock`` (SQLite has one writer; every write is one
``BEGIN IMMEDIATE`` transaction): the aiosqlite writer (directory, administration), the flows' writer
thread (``sqlite_db.ThreadConnection``: a whole transaction in one call), holding the lock while it
commits (``writing_elsewhere``), the deposits' writer process, and, from its own thread and connection
(``thread_writes``), the flows' pump (``engine.pump``). One reader, with its own lock so that a
multi-statement read sees one snapshot (WAL lets it read while a writer commits).

Invariants: parameters are encoded here (``encode``): datetimes as fixed-width ISO 8601 UTC text with
microseconds (text order is time order), dates as ISO text, booleans as 0/1, lists as JSON arrays (read
with ``json_each``); rows come back as ``sqlite3.Row``, read by ``READER``. Every committed write wakes
``commits`` (``wait_for_events``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import aiosqlite

from engine.errors import StoreUnavailable
from engine.store.rows import RowReader, utc
from engine.store.sql import NO_PARAMS, Params, Statement
from engine.store.sqlite_db import SyncSetting, ThreadConnection, connect, migrate, transaction, wrap
from engine.store.write_lock import WriteLock

T = TypeVar("T")


def to_db_time(at: datetime) -> str:
    return utc(at).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


READER = RowReader(time=from_db_time, names=json.loads)


_PLAIN = frozenset({str, int, float, bytes, type(None)})


def _value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return to_db_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return value


def encode(params: Params) -> dict[str, Any]:
    return {name: _value(value) for name, value in params.items()}


def _text(statement: Statement, params: Params) -> str | None:
    return statement.sqlite_text(params)


class SqliteConnection:
    """``engine.store.database.Transaction`` on an aiosqlite connection the caller holds."""

    decode = READER

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def rows(self, statement: Statement, params: Params = NO_PARAMS) -> list[sqlite3.Row]:
        text = _text(statement, params)
        return [] if text is None else list(await self._conn.execute_fetchall(text, encode(params)))

    async def value(self, statement: Statement, params: Params = NO_PARAMS) -> Any:
        rows = await self.rows(statement, params)
        return rows[0][0] if rows else None

    async def execute(self, statement: Statement, params: Params = NO_PARAMS) -> int:
        text = _text(statement, params)
        return 0 if text is None else (await self._conn.execute(text, encode(params))).rowcount

    async def execute_many(self, statement: Statement, params: Sequence[Params]) -> None:
        text = _text(statement, NO_PARAMS)
        if text is not None and params:
            await self._conn.executemany(text, [encode(p) for p in params])

    def count_flow(self, issuer: str, deposited_at: datetime, syntax: str, status: str, n: int) -> None:
        """Nothing: SQLite's counters are kept by triggers (migrations 0002, 0003)."""

    def count_error(
        self, issuer: str, deposited_at: datetime, syntax: str, code: str, rule: str | None, n: int
    ) -> None:
        """Nothing: SQLite's counters are kept by triggers (migrations 0002, 0003)."""


class SqliteSync:
    """The same statements on a plain ``sqlite3`` connection, inside the flows' writer thread's transaction
    (``SqliteDatabase.write_flows``) or the deposits' writer process's."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, statement: Statement, params: Params = NO_PARAMS) -> list[sqlite3.Row]:
        text = _text(statement, params)
        return [] if text is None else self.conn.execute(text, encode(params)).fetchall()

    def value(self, statement: Statement, params: Params = NO_PARAMS) -> Any:
        rows = self.rows(statement, params)
        return rows[0][0] if rows else None

    def execute(self, statement: Statement, params: Params = NO_PARAMS) -> int:
        text = _text(statement, params)
        return 0 if text is None else self.conn.execute(text, encode(params)).rowcount

    def execute_many(self, statement: Statement, params: Sequence[Params]) -> None:
        text = _text(statement, NO_PARAMS)
        if text is not None and params:
            self.conn.executemany(text, [encode(p) for p in params])


class CommitSignal:
    """Wakes ``wait_for_events`` callers after a write transaction of this process commits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Take this before checking the feed: a commit after the check still sets it."""
        return self._event


class SqliteDatabase:
    """The connections of one SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._flow_writer: ThreadConnection | None = None
        self._write_lock = WriteLock()  # the loop's writers and the flows' pump thread (engine.pump)
        self._read_lock = asyncio.Lock()
        self._writer_sync = SyncSetting()  # connect() sets synchronous=FULL
        self.commits = CommitSignal()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self, progress: Callable[[], None] | None = None) -> None:
        """Connect the writer, apply pending migrations (calling ``progress`` meanwhile), connect the reader
        and the writer thread."""
        with wrap():
            writer = await connect(self.path)
            try:
                await migrate(writer, self._write_lock, progress)
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

    async def close(self, before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Wait for running transactions, then close the connections (the WAL is checkpointed); ``before``
        is awaited first under both locks (the deposits' writer process ends there)."""
        async with self._write_lock, self._read_lock:
            writer, reader, flow_writer = self._writer, self._reader, self._flow_writer
            self._writer = self._reader = self._flow_writer = None
            if before is not None:
                await before()
            with wrap():
                if flow_writer is not None:
                    await flow_writer.close()
                if reader is not None:
                    await reader.close()
                if writer is not None:
                    await writer.close()

    @asynccontextmanager
    async def read(self, *, custom_plans: bool = False) -> AsyncIterator[SqliteConnection]:
        """The reader: one statement is one snapshot (``custom_plans`` is PostgreSQL's)."""
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            async with self._read_lock:
                yield SqliteConnection(self._reader)

    @asynccontextmanager
    async def snapshot(self, *, custom_plans: bool = False) -> AsyncIterator[SqliteConnection]:
        """One read transaction on the reader: several statements see one snapshot."""
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            async with transaction(self._reader, self._read_lock, write=False) as conn:
                yield SqliteConnection(conn)

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[SqliteConnection]:
        """One write transaction on the aiosqlite writer, synced to disk at COMMIT unless ``durable=False``."""
        if self._writer is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            async with transaction(
                self._writer, self._write_lock, write=True, durable=durable, sync=self._writer_sync
            ) as conn:
                yield SqliteConnection(conn)
        self.commits.notify()  # committed (an error skips this): a status change may be in the feed

    async def write_flows(self, work: Callable[[SqliteSync], T], *, durable: bool = True) -> T:
        """``work`` as one write transaction, in one call to the flows' writer thread; synced to disk at
        COMMIT unless ``durable=False``."""
        if self._flow_writer is None:
            raise StoreUnavailable("the store is not open")
        with wrap():
            result = await self._flow_writer.transaction(
                self._write_lock, lambda conn: work(SqliteSync(conn)), durable=durable
            )
        self.commits.notify()
        return result

    def thread_writes(self) -> AbstractContextManager[None]:
        """The write lock, held by a thread off the event loop with a connection of its own (the flows'
        pump); it wakes ``commits`` itself, on the loop, after it commits."""
        return self._write_lock.held()

    @asynccontextmanager
    async def writing_elsewhere(self) -> AsyncIterator[None]:
        """Hold the write lock while another connection (the deposits' writer process) commits; wakes event
        waiters after, even when the commit failed (it may have committed before failing to answer)."""
        async with self._write_lock:
            if self._flow_writer is None:
                raise StoreUnavailable("the store is not open")
            try:
                yield
            finally:
                self.commits.notify()
