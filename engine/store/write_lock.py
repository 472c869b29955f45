"""``WriteLock``: the one writer of a SQLite file within this process, for coroutines and for a thread.

SQLite has one writer at a time. The event loop's writers (the aiosqlite writer, the flows' writer thread,
the deposits' writer process) queue on an ``asyncio.Lock``, in order and without a busy-wait; the flows'
pump (``engine.pump``) writes from a thread of its own, which cannot await. So the lock is two: the asyncio
lock orders the coroutines, and a ``threading.Lock`` behind it is what the loop's holder and the pump
contend for. Uncontended, the loop's holder takes it without blocking (a try); while the pump holds it
(one turn: a few milliseconds) the holder waits for it in a worker thread, never on the loop.

Without it, the pump's ``BEGIN IMMEDIATE`` and the loop's would meet in SQLite's busy handler, which
sleeps in steps of milliseconds, and a deposit's commit could wait behind it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType


class WriteLock:
    """``async with lock`` on the event loop; ``with lock.held()`` on any other thread."""

    def __init__(self) -> None:
        self._loop_side = asyncio.Lock()
        self._file = threading.Lock()

    async def __aenter__(self) -> None:
        await self._loop_side.acquire()
        try:
            if not self._file.acquire(blocking=False):
                await _acquire_off_loop(self._file)
        except BaseException:
            self._loop_side.release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.release()
        self._loop_side.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock from a thread that is not the event loop's (blocking until it is free)."""
        with self._file:
            yield


async def _acquire_off_loop(lock: threading.Lock) -> None:
    """Wait for ``lock`` in a worker thread. Cancelled meanwhile, the thread still takes it: it is given
    back at once, and the cancellation goes on."""
    waiting = asyncio.ensure_future(asyncio.to_thread(lock.acquire))
    try:
        await asyncio.shield(waiting)
    except asyncio.CancelledError:
        await asyncio.wait([waiting])
        if not waiting.cancelled() and waiting.exception() is None:
            lock.release()
        raise
