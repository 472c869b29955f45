"""systemd's notification protocol (sd_notify): READY, STOPPING, WATCHDOG and STATUS messages.

The protocol is one datagram on the unix socket named by ``$NOTIFY_SOCKET``; without that variable
(not run by systemd) every call is a no-op. Written here rather than pulled in as a dependency: the
maintained binding needs libsystemd headers to build, and the protocol is these few lines.
"""

from __future__ import annotations

import contextlib
import os
import socket


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


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd asked for (``$WATCHDOG_USEC``), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000
