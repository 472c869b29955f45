"""systemd's notification protocol (sd_notify): READY, STOPPING, WATCHDOG, STATUS and EXTEND_TIMEOUT_USEC
messages.

The protocol is one datagram on the unix socket named by ``$NOTIFY_SOCKET``; without that variable
(not run by systemd) every call is a no-op. Written here rather than pulled in as a dependency: the
maintained binding needs libsystemd headers to build, and the protocol is these few lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# A long start-up step asks for more time than TimeoutStartSec= every EXTEND_EVERY_S it advanced.
EXTEND_EVERY_S = 10.0
EXTEND_BY_S = 30.0


class Notifier:
    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):  # abstract namespace socket
            path = "\0" + path[1:]
        self._path = path

    @property
    def enabled(self) -> bool:
        return bool(self._path)

    def notify(self, message: str) -> None:
        if not self._path:
            return
        # If systemd went away there is nothing useful to do about it: the message is dropped.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto(message.encode(), self._path)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def extend_start(self, seconds: float, status: str) -> None:
        """Ask for ``seconds`` more start-up time from now (systemd 236+; older ones ignore it)."""
        self.notify(f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}\nSTATUS={status}")


async def while_advancing(
    notifier: Notifier,
    work: Callable[[Callable[[], None]], Awaitable[T]],
    *,
    status: str,
    every_s: float = EXTEND_EVERY_S,
    extend_by_s: float = EXTEND_BY_S,
) -> T:
    """Await ``work(progress)``. Every ``every_s`` in which it called ``progress`` (from any thread),
    systemd is asked for ``extend_by_s`` more start-up time, with ``status`` and the time so far: the
    check or the migration of a big store is not killed by TimeoutStartSec= and restarted forever, while
    a stalled one gets no more time than before."""
    calls = 0

    def progress() -> None:
        nonlocal calls
        calls += 1  # from SQLite's thread: an int under the GIL, read by the loop below

    started = time.monotonic()
    running = asyncio.ensure_future(work(progress))
    seen = 0
    try:
        while True:
            done, _ = await asyncio.wait({running}, timeout=every_s)
            if done:
                return running.result()
            if calls != seen:
                seen = calls
                notifier.extend_start(extend_by_s, f"{status} ({time.monotonic() - started:.0f} s)")
    finally:
        running.cancel()  # when we were cancelled: the step goes with us (a no-op once it is done)


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd asked for (``$WATCHDOG_USEC``), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000
