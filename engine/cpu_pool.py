"""The validation pool: CPU-heavy checks run in worker processes, never on the event loop (DESIGN §9.5).

Each process loads its compiled schemas and XSLTs once (module-level caches in ``engine.validation``)
and keeps them for its whole life. A call that exceeds its timeout, or a process that dies, is reported
to the caller as ``CheckTimeout`` / ``CheckCrashed`` (the flow goes to WARNING); the pool is then
replaced, and calls that were merely caught in that replacement are retried once on the new pool.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


class CheckTimeout(Exception):
    """The check did not finish in time."""


class CheckCrashed(Exception):
    """The process running the check died."""


def _start_process(initializer: Callable[[], None] | None) -> None:
    """A pool process ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and the
    daemon that handles it stops the pool in order (an interrupted process would print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()


class CpuPool:
    def __init__(self, processes: int, *, initializer: Callable[[], None] | None = None) -> None:
        self._processes = max(1, processes)
        self._initializer = initializer
        self._generation = 0
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn: a forked child would inherit the parent's event loop and driver threads.
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=functools.partial(_start_process, self._initializer),
        )

    async def run(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker process; raise ``CheckTimeout`` or ``CheckCrashed``."""
        for _ in range(2):
            generation = self._generation
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, fn, *args)
            try:
                return await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                self._replace(generation)
                raise CheckTimeout(f"check did not finish within {timeout_s:g} s") from None
            except BrokenProcessPool:
                if generation != self._generation:
                    continue  # another call's timeout replaced the pool under us: retry once
                self._replace(generation)
                raise CheckCrashed("the validation process died") from None
        raise CheckCrashed("the validation pool was replaced twice during one check")

    def _replace(self, generation: int) -> None:
        """Kill the current processes (a hung check cannot be cancelled otherwise) and start anew."""
        if generation != self._generation:
            return
        self._generation += 1
        old = self._executor
        # ProcessPoolExecutor offers no way to stop a running task; killing its processes is the only one.
        for process in list(getattr(old, "_processes", {}).values()):
            process.kill()
        old.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    def warm_up(self, fn: Callable[[], object]) -> None:
        """Start every process now and let it load its artefacts (first flows are then not slow)."""
        futures = [self._executor.submit(fn) for _ in range(self._processes)]
        for f in futures:
            f.result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
