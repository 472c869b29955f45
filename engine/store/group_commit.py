"""Group commit: concurrent writers share one transaction, so one fsync acknowledges many of them.

A caller ``submit``s an item and waits. If no batch is being written, a flusher task starts and takes
every item queued so far; items submitted while that transaction runs (and waits for its COMMIT and
fsync) form the next batch. The flusher's ``run_batch`` writes a batch in ONE transaction and returns one
outcome per item — a result, or an exception that concerns that item only (it must have isolated that
item's writes, e.g. with a savepoint). A failure of the transaction itself is raised to every caller of
the batch.

Invariant: a caller gets its result only after ``run_batch`` returned, i.e. after the COMMIT (with
``synchronous=FULL``, on disk): group commit never acknowledges anything earlier than a lone commit
would. A caller cancelled while waiting does not cancel the batch (its item may still be committed, as
with a lone transaction that commits just as the caller goes away).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, run_batch: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]) -> None:
        self._run_batch = run_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # how many transactions ran (tests and benchmarks read it)

    async def submit(self, item: T) -> R:
        waiter: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, waiter))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await waiter

    async def drain(self) -> None:
        """Wait until every submitted item has been written (store close)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = await self._run_batch([item for item, _ in batch])
            except BaseException as exc:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                if not isinstance(exc, Exception):
                    self._fail_queued(exc)
                    raise  # cancellation or interpreter exit: never swallowed
                continue
            self.batches += 1
            for (_, waiter), outcome in zip(batch, outcomes, strict=True):
                if waiter.done():  # the caller went away
                    continue
                if isinstance(outcome, BaseException):
                    waiter.set_exception(outcome)
                else:
                    waiter.set_result(outcome)

    def _fail_queued(self, exc: BaseException) -> None:
        queued, self._queue = self._queue, []
        for _, waiter in queued:
            if not waiter.done():
                waiter.set_exception(exc)
