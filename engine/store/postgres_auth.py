"""SFTP authentication failures for ``PostgresStore``, with the semantics of ``sqlite_auth``: rows of
``auth_failures`` in and out of ``engine.lockout``, whose functions decide everything.

Invariants: each change is one transaction that creates the rows of the attempt's keys when missing, locks
them in key order (``FOR UPDATE``: daemons counting the same keys at once wait for each other instead of
losing an attempt, and never deadlock), applies one ``engine.lockout`` function and writes the rows it
changed. A change is first computed on a plain read: when it changes nothing (a blocked attempt, nothing
to forgive) no transaction is opened, so a locked-out client costs reads only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine import lockout
from engine.lockout import Backoff, FailureWindow
from engine.store.postgres_db import Tx
from engine.store.postgres_rows import utc

AUTH_LOCKED = "SELECT EXISTS (SELECT 1 FROM auth_failures WHERE key = ANY($1::text[]) AND locked_until > $2)"
AUTH_ROWS = """SELECT key, failures, window_start, locked_until, strikes FROM auth_failures
WHERE key = ANY($1::text[])"""
AUTH_ENSURE = """INSERT INTO auth_failures (key, failures, window_start)
SELECT k, 0, $2 FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING"""
AUTH_LOCK_ROWS = AUTH_ROWS + " ORDER BY key FOR UPDATE"
AUTH_SAVE = """INSERT INTO auth_failures (key, failures, window_start, locked_until, strikes)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
    locked_until = excluded.locked_until, strikes = excluded.strikes"""
AUTH_DROP = "DELETE FROM auth_failures WHERE key = $1"
# Rows another transaction holds are skipped, never waited for: forgetting cannot deadlock with counting.
AUTH_FORGET = """DELETE FROM auth_failures WHERE key IN (
    SELECT key FROM auth_failures WHERE window_start <= $1 AND (locked_until IS NULL OR locked_until <= $1)
    FOR UPDATE SKIP LOCKED)"""

Changes = Mapping[str, FailureWindow | None]  # None: the row is deleted
Rows = dict[str, FailureWindow]


def rows_of(records: list[Any]) -> Rows:
    """The rows that hold something: a row created empty (``AUTH_ENSURE``) is no row."""
    return {
        str(r["key"]): FailureWindow(r["failures"], r["window_start"], r["locked_until"], r["strikes"])
        for r in records
        if r["failures"] or r["strikes"] or r["locked_until"] is not None
    }


class PostgresAuthFailures:
    """The lockout half of ``PostgresAdmin`` (see the module docstring and ``Store``'s methods)."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractAsyncContextManager[Tx]: ...

        async def _fetch(self, query: str, *args: Any) -> list[Any]: ...

        async def _fetchval(self, query: str, *args: Any) -> Any: ...

    async def auth_locked(self, keys: Sequence[str], now: datetime) -> bool:
        return bool(keys) and bool(await self._fetchval(AUTH_LOCKED, list(keys), utc(now)))

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
        the rows locked in a transaction (created at ``create_at`` when missing), and saved."""
        ordered = sorted(set(keys))
        if not change(rows_of(await self._fetch(AUTH_ROWS, ordered))):
            return None
        async with self._write() as tx:
            if forget_before is not None:
                await tx.conn.execute(AUTH_FORGET, forget_before)
            if create_at is not None:
                await tx.conn.execute(AUTH_ENSURE, ordered, create_at)
            changes = change(rows_of(await tx.conn.fetch(AUTH_LOCK_ROWS, ordered)))
            for key, row in (changes or {}).items():
                if row is None:
                    await tx.conn.execute(AUTH_DROP, key)
                else:
                    await tx.conn.execute(AUTH_SAVE, key, row.failures, row.window_start, row.locked_until, row.strikes)
            return changes
