"""``LISTEN`` for ``PostgresStore``: one dedicated connection turns NOTIFYs into asyncio wake-ups.

Wake-ups are hints (the port says so): a waiter re-queries. When the connection is lost (server restart)
waits simply run to their timeout, the connection is re-made on the next wait (at most once a second),
and every waiter is woken on reconnection, since something may have happened unseen meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from engine.store.postgres_db import DriverError

RECONNECT_EVERY_S = 1.0
CONNECT_TIMEOUT_S = 5.0


class Listener:
    """Listens on ``channels``; counts notifications per channel and wakes futures waiting on one."""

    def __init__(self, dsn: str, channels: tuple[str, ...]) -> None:
        self._dsn = dsn
        self._channels = channels
        self._conn: Any = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = {c: set() for c in channels}
        self.generation: dict[str, int] = dict.fromkeys(channels, 0)
        self.last_payload: dict[str, str] = dict.fromkeys(channels, "")
        self._next_attempt = 0.0
        self._connecting = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> None:
        """Connect and LISTEN if not connected (failures are silent: waits fall back to timeouts)."""
        if self.connected:
            return
        loop = asyncio.get_running_loop()
        async with self._connecting:
            if self.connected or loop.time() < self._next_attempt:
                return
            self._next_attempt = loop.time() + RECONNECT_EVERY_S
            await self._drop()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
            except DriverError:
                return
            try:
                for channel in self._channels:
                    await conn.add_listener(channel, self._on_notify)
            except DriverError:
                with contextlib.suppress(*DriverError):
                    await conn.close(timeout=1)
                return
            self._conn = conn
            for channel in self._channels:  # anything may have happened while we were deaf
                self._wake(channel)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self.last_payload[channel] = payload
        self._wake(channel)

    def _wake(self, channel: str) -> None:
        self.generation[channel] += 1
        waiters, self._waiters[channel] = self._waiters[channel], set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def waiter(self, channel: str) -> asyncio.Future[None]:
        """A future resolved at the next notification on ``channel`` (register before re-checking)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[channel].add(fut)
        return fut

    def discard(self, channel: str, fut: asyncio.Future[None]) -> None:
        self._waiters[channel].discard(fut)

    async def wait(self, fut: asyncio.Future[None], channel: str, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(fut), max(timeout_s, 0.0))
        except TimeoutError:
            pass
        finally:
            self._waiters[channel].discard(fut)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*DriverError):
                await conn.close(timeout=1)

    async def close(self) -> None:
        await self._drop()
        for channel in self._channels:
            self._wake(channel)
