"""Cluster-wide singletons for ``PostgresStore``: session-level advisory locks on one dedicated connection.

Periodic jobs that must run on exactly one daemon at a time (stuck-flow watchdog, outbox writing and
repair, retention purge) call ``try_singleton(name)`` before each run. Invariants:

* A name maps to one fixed advisory lock key (``SINGLETON_KEY_BASE`` | crc32 of the name), distinct from
  the migration lock. ``pg_try_advisory_lock`` never waits: another session holding it means False.
* The locks live on a connection of their own (not the pool's): held until ``release_singleton``, until
  ``close``, or until that connection dies with the process (``kill -9``, lost machine), when PostgreSQL
  drops them and the next daemon to ask gets the singleton. A dead process's session ends when the server
  sees its socket closed (at once on a crash of the process; on a lost machine, after TCP keepalives).
* Each call proves the session alive with one round trip. When the connection was lost (server restart,
  network), every singleton this process held is forgotten and asked for again on a new connection, so
  the holder's job stops at its next check; a job running across the loss may overlap another holder's
  run for at most that job's current step (callers check between steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Any

import asyncpg

from engine.store.postgres_db import DriverError, PgConnection
from engine.store.sql import both

SINGLETON_KEY_BASE = 0x66786401_00000000  # 'fxd' + 0x01: singletons (the migration lock is 0x…00_00000001)
CONNECT_TIMEOUT_S = 5.0
RECONNECT_EVERY_S = 1.0

_TRY_LOCK = both("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = both("SELECT pg_advisory_unlock(:key)")
_ALIVE = both("SELECT 1")


def singleton_key(name: str) -> int:
    """The advisory lock key of singleton ``name`` (stable across processes and versions)."""
    return SINGLETON_KEY_BASE | zlib.crc32(name.encode("utf-8"))


class Singletons:
    """The singletons one process holds, on one dedicated connection (see the module docstring)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._held: set[str] = set()
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._next_attempt = 0.0
        self._closed = False

    async def try_hold(self, name: str) -> bool:
        """True when this process holds ``name`` (taken now or earlier); False when another does or the
        database cannot be reached."""
        async with self._lock:
            conn = await self._connection()
            if conn is None:
                return False
            try:
                if name in self._held:
                    await conn.value(_ALIVE)
                    return True
                if await conn.value(_TRY_LOCK, {"key": singleton_key(name)}):
                    self._held.add(name)
                    return True
                return False
            except DriverError:
                await self._drop()
                return False

    async def release(self, name: str) -> None:
        """Give ``name`` up (no-op when not held)."""
        async with self._lock:
            if name not in self._held:
                return
            self._held.discard(name)
            conn = self._conn
            if conn is not None and not conn.is_closed():
                try:
                    await PgConnection(conn).value(_UNLOCK, {"key": singleton_key(name)})
                except DriverError:
                    await self._drop()

    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def close(self) -> None:
        """Close the connection: PostgreSQL releases every lock it held."""
        async with self._lock:
            self._closed = True
            await self._drop()

    async def _connection(self) -> PgConnection | None:
        if self._conn is not None and not self._conn.is_closed():
            return PgConnection(self._conn)
        self._held.clear()  # a lost session lost its locks
        loop = asyncio.get_running_loop()
        if self._closed or loop.time() < self._next_attempt:
            return None
        self._next_attempt = loop.time() + RECONNECT_EVERY_S
        try:
            self._conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
        except DriverError:
            self._conn = None
            return None
        return PgConnection(self._conn)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*DriverError):
                await conn.close(timeout=1)
