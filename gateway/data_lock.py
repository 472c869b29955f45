"""One daemon per data folder on the embedded store: an ``flock`` on ``<data dir>/fluxdepot.lock``.

A daemon on SQLite takes the lock exclusively before it opens anything and holds it for its life; a
second daemon, or an offline admin command that writes (``restore``, ``purge``, ``migrate``,
``import-directory``), finds it taken and refuses, naming the holder's pid. Daemons sharing a PostgreSQL
store share the data folder by design (the database arbitrates), so they take the lock shared: they do
not stop each other, but an offline command that wants the folder to itself still sees them.

The kernel drops an ``flock`` when its holder dies, ``kill -9`` included, so a stale lock file is never a
problem. The descriptor is not inherited by the validation processes (they are spawned, and Python opens
files non-inheritable), so a lock outlives its daemon only while that daemon's process does.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "fluxdepot.lock"


class DataFolderBusy(Exception):
    """Another process holds the data folder."""

    def __init__(self, folder: Path, holder_pid: int | None) -> None:
        holder = f"pid {holder_pid}" if holder_pid else "another process"
        super().__init__(f"data folder {folder} is in use by fluxdepot ({holder})")
        self.folder = folder
        self.holder_pid = holder_pid


class DataFolderLock:
    """Held from ``acquire()`` until ``release()`` (or the process's end)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False) -> None:
        """Take the lock at once or raise ``DataFolderBusy``; records this pid for the next one to name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataFolderBusy(self.folder, holder) from None
        # Several shared holders each write their pid: the file names one of them, enough to find the rest.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DataFolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
