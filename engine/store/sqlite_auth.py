"""SFTP authentication failures for ``SqliteStore`` (the port's lockout methods): rows of ``auth_failures``
in and out of ``engine.lockout``, whose functions decide everything.

Invariants: each change is one ``BEGIN IMMEDIATE`` transaction that reads the rows of the attempt's keys,
applies one ``engine.lockout`` function and writes the rows it changed, so processes sharing the file
count every attempt once. A change is first computed on the reader: when it changes nothing (a blocked
attempt, nothing to forgive) no write transaction is taken, so a locked-out client costs reads only.
Rows whose window and last lock are both older than the window are deleted as attempts are counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiosqlite

from engine import lockout
from engine.lockout import Backoff, FailureWindow
from engine.store.sqlite_rows import from_db_time, to_db_time

AUTH_LOCKED = """SELECT 1 FROM auth_failures
WHERE key IN (SELECT value FROM json_each(:keys)) AND locked_until > :now LIMIT 1"""
AUTH_ROWS = """SELECT key, failures, window_start, locked_until, strikes FROM auth_failures
WHERE key IN (SELECT value FROM json_each(:keys))"""
AUTH_SAVE = """INSERT OR REPLACE INTO auth_failures (key, failures, window_start, locked_until, strikes)
VALUES (:key, :failures, :window_start, :locked_until, :strikes)"""
AUTH_DROP = "DELETE FROM auth_failures WHERE key = :key"
AUTH_FORGET = """DELETE FROM auth_failures
WHERE window_start <= :cutoff AND (locked_until IS NULL OR locked_until <= :cutoff)"""

Changes = Mapping[str, FailureWindow | None]  # None: the row is deleted
Rows = dict[str, FailureWindow]


async def read_rows(conn: aiosqlite.Connection, keys: Sequence[str]) -> Rows:
    rows = await conn.execute_fetchall(AUTH_ROWS, {"keys": json.dumps(list(keys))})
    return {
        str(r[0]): FailureWindow(int(r[1]), from_db_time(r[2]), from_db_time(r[3]) if r[3] else None, int(r[4]))
        for r in rows
    }


async def save_rows(conn: aiosqlite.Connection, changes: Changes) -> None:
    for key, row in changes.items():
        if row is None:
            await conn.execute(AUTH_DROP, {"key": key})
            continue
        await conn.execute(
            AUTH_SAVE,
            {
                "key": key,
                "failures": row.failures,
                "window_start": to_db_time(row.window_start),
                "locked_until": to_db_time(row.locked_until) if row.locked_until else None,
                "strikes": row.strikes,
            },
        )


class SqliteAuthFailures:
    """The lockout half of ``SqliteAdmin`` (see the module docstring and ``Store``'s methods)."""

    if TYPE_CHECKING:

        def _read(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

        def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def auth_locked(self, keys: Sequence[str], now: datetime) -> bool:
        if not keys:
            return False
        async with self._read() as conn:
            found = await conn.execute_fetchall(AUTH_LOCKED, {"keys": json.dumps(list(keys)), "now": to_db_time(now)})
        return bool(list(found))

    async def take_auth_attempt(self, limits: Sequence[tuple[str, int]], now: datetime, window_s: float) -> bool:
        window = timedelta(seconds=window_s)
        counted = await self._auth_change(
            [key for key, _ in limits], lambda rows: lockout.taken(rows, limits, now, window), now - window
        )
        return counted is not None

    async def record_auth_failures(
        self,
        limits: Sequence[tuple[str, int]],
        now: datetime,
        window_s: float,
        first_lockout_s: float | None = None,
        *,
        taken: bool = False,
    ) -> list[str]:
        first_s = window_s if first_lockout_s is None else first_lockout_s
        backoff = Backoff(timedelta(seconds=first_s), timedelta(seconds=window_s))
        locked: list[str] = []

        def fail(rows: Rows) -> Changes:
            changed, newly = lockout.after_failure(rows, limits, now, backoff, already_taken=taken)
            locked[:] = newly
            return changed

        await self._auth_change([key for key, _ in limits], fail, now - backoff.longest)
        return locked

    async def clear_auth_failures(self, key: str, refund_keys: Sequence[str] = ()) -> None:
        await self._auth_change([key, *refund_keys], lambda rows: lockout.forgiven(rows, key, refund_keys), None)

    async def _auth_change(
        self, keys: Sequence[str], change: Callable[[Rows], Changes | None], forget_before: datetime | None
    ) -> Changes | None:
        """``change`` on the rows of ``keys``: tried on the reader, then, when it changes rows, again in a
        write transaction (the rows may have moved in between) whose result is saved and returned."""
        async with self._read() as conn:
            if not change(await read_rows(conn, keys)):
                return None
        async with self._write() as conn:
            if forget_before is not None:
                await conn.execute(AUTH_FORGET, {"cutoff": to_db_time(forget_before)})
            changes = change(await read_rows(conn, keys))
            if changes:
                await save_rows(conn, changes)
            return changes
