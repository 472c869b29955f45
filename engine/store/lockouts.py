"""SFTP authentication failures of both stores (the port's lockout methods), once, on a backend's ``Database``:
rows of ``auth_failures`` in and out of ``engine.lockout``, whose functions decide everything.

Invariants: each change is one transaction that forgets old windows, reads the rows of the attempt's keys
for update (PostgreSQL creates the missing ones empty and locks them in key order: daemons counting the
same keys wait for each other instead of losing an attempt, and never deadlock; SQLite's write
transaction is the only writer), applies one ``engine.lockout`` function and writes the rows it changed.
A change is first computed on a plain read: when it changes nothing (a blocked attempt, nothing to
forgive) no write transaction is taken, so a locked-out client costs reads only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from engine import lockout
from engine.lockout import Backoff, FailureWindow
from engine.store import sql_directory as sql
from engine.store.database import Connection, Database
from engine.store.rows import Row, utc
from engine.store.sql import Statement

Changes = Mapping[str, FailureWindow | None]  # None: the row is deleted
Rows = dict[str, FailureWindow]


async def _rows(conn: Connection, statement: Statement, keys: list[str]) -> Rows:
    """The rows that hold something (``held``: a row PostgreSQL created empty to lock it is no row)."""
    time = conn.decode.time
    found: list[Row] = list(await conn.rows(statement, {"keys": keys}))
    return {
        str(r["key"]): FailureWindow(
            int(r["failures"]),
            time(r["window_start"]),
            time(r["locked_until"]) if r["locked_until"] is not None else None,
            int(r["strikes"]),
        )
        for r in found
        if r["held"]
    }


class Lockouts:
    """Part of ``engine.store.sql_store.SqlStore``."""

    _db: Database

    async def auth_locked(self, keys: Sequence[str], now: datetime) -> bool:
        if not keys:
            return False
        async with self._db.read() as conn:
            return bool(await conn.value(sql.AUTH_LOCKED, {"keys": list(keys), "now": now}))

    async def take_auth_attempt(self, limits: Sequence[tuple[str, int]], now: datetime, window_s: float) -> bool:
        at, window = utc(now), timedelta(seconds=window_s)
        counted = await self._auth_change(
            [key for key, _ in limits], lambda rows: lockout.taken(rows, limits, at, window), at, at - window
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
        at = utc(now)
        first_s = window_s if first_lockout_s is None else first_lockout_s
        backoff = Backoff(timedelta(seconds=first_s), timedelta(seconds=window_s))
        locked: list[str] = []

        def fail(rows: Rows) -> Changes:
            changed, newly = lockout.after_failure(rows, limits, at, backoff, already_taken=taken)
            locked[:] = newly
            return changed

        await self._auth_change([key for key, _ in limits], fail, at, at - backoff.longest)
        return locked

    async def clear_auth_failures(self, key: str, refund_keys: Sequence[str] = ()) -> None:
        await self._auth_change([key, *refund_keys], lambda rows: lockout.forgiven(rows, key, refund_keys), None, None)

    async def _auth_change(
        self,
        keys: Sequence[str],
        change: Callable[[Rows], Changes | None],
        create_at: datetime | None,
        forget_before: datetime | None,
    ) -> Changes | None:
        """``change`` on the rows of ``keys``: tried on a plain read, then, when it changes rows, again on
        the rows read for update in a write transaction (created at ``create_at`` where the backend locks
        rows), and saved."""
        ordered = sorted(set(keys))
        async with self._db.read() as conn:
            if not change(await _rows(conn, sql.AUTH_ROWS, ordered)):
                return None
        async with self._db.write() as tx:
            if forget_before is not None:
                await tx.execute(sql.AUTH_FORGET, {"cutoff": forget_before})
            if create_at is not None:
                await tx.execute(sql.AUTH_ENSURE, {"keys": ordered, "at": create_at})
            changes = change(await _rows(tx, sql.AUTH_LOCK_ROWS, ordered))
            for key, row in (changes or {}).items():
                if row is None:
                    await tx.execute(sql.AUTH_DROP, {"key": key})
                    continue
                saved = {
                    "key": key,
                    "failures": row.failures,
                    "window_start": row.window_start,
                    "locked_until": row.locked_until,
                    "strikes": row.strikes,
                }
                await tx.execute(sql.AUTH_SAVE, saved)
            return changes
