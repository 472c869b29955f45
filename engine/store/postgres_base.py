"""The pool half of ``PostgresStore``: acquiring connections, running one statement, the claim/wake-up
bookkeeping. Every driver call goes through ``postgres_db.wrap`` here or in ``PostgresStore._write``.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from engine.errors import StoreUnavailable
from engine.store import postgres_sql as sql
from engine.store.postgres_db import wrap
from engine.store.postgres_listen import Listener

# Per task: the work-notification generation seen when it last tried to claim (see wait_for_work).
_CLAIM_GENERATION: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("claim_generation")


class PostgresBase:
    _listener: Listener

    def __init__(self) -> None:
        self._pool: Any = None  # asyncpg.Pool once open

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        return self._pool

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Any]:
        """A pooled connection for reads (one statement is one snapshot; several use ``_snapshot``)."""
        pool = self._require_pool()
        with wrap():
            async with pool.acquire() as conn:
                yield conn

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Any]:
        """A read-only REPEATABLE READ transaction: several statements see one snapshot."""
        pool = self._require_pool()
        with wrap():
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                yield conn

    @asynccontextmanager
    async def _planned(self) -> AsyncIterator[Any]:
        """``_snapshot`` that plans every statement for its actual parameters: the monitoring statements
        are constant texts whose unused filters are NULL parameters, which only a custom plan folds away
        (a cached generic plan would keep them and miss the indexes)."""
        async with self._snapshot() as conn:
            await conn.execute(sql.CUSTOM_PLANS)
            yield conn

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        async with self._read() as conn:
            return list(await conn.fetch(query, *args))

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        async with self._read() as conn:
            return await conn.fetchrow(query, *args)

    async def _fetchval(self, query: str, *args: Any) -> Any:
        async with self._read() as conn:
            return await conn.fetchval(query, *args)

    async def _execute(self, query: str, *args: Any) -> str:
        async with self._read() as conn:
            return str(await conn.execute(query, *args))

    def _note_claim_attempt(self) -> None:
        _CLAIM_GENERATION.set((id(self), self._listener.generation[sql.WORK_CHANNEL]))

    def _work_arrived_since_claim(self) -> bool:
        """Whether a work NOTIFY arrived after this task's last claim began (it may have missed it)."""
        seen = _CLAIM_GENERATION.get(None)
        if seen is None or seen[0] != id(self):
            return False
        return self._listener.generation[sql.WORK_CHANNEL] > seen[1]
