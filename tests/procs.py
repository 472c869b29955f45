"""Child processes as tests see them, through Linux ``/proc``: running or not, and waiting for them to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

POLL_S = 0.05


def running(pid: int) -> bool:
    """Process ``pid`` exists and is not a zombie (a zombie has ended; its parent has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def still_running(pids: Iterable[int], timeout_s: float) -> list[int]:
    """Wait up to ``timeout_s`` for every process of ``pids`` to end; those still running then."""
    waited = list(pids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (left := [pid for pid in waited if running(pid)]) and loop.time() < deadline:  # noqa: ASYNC110 - /proc offers nothing to await
        await asyncio.sleep(POLL_S)
    return left
