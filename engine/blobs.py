"""Content-addressed storage of deposited bytes: ``root/ab/cd/<sha256>``, the key being the sha256.

Invariants:

* A blob appears under its final name only complete and on disk: bytes go to a temporary file in
  ``root/tmp/`` (same file system), are made durable, renamed into place, and the rename is made
  durable before the call returns. Nothing under a final name is ever partial; ``sweep_temp()`` removes
  the temporary files a crash left behind (call it at startup, before any write).
* ``put_many`` stores a batch of blobs with a constant number of syncs (the deposit service batches
  concurrent deposits through it): every temporary file is written, ONE durability barrier covers them
  all, then every rename, then ONE barrier covers the renames (and the directories they created). The
  barrier is Linux ``syncfs(2)`` on the blob file system when it reports write-back errors (kernel
  5.8 or later, called through ctypes); elsewhere, or with ``sync="fsync"``, it falls back to
  ``fsync`` of each file back to back, then ``fsync`` of each touched directory once per batch.
  Either way a file's bytes are durable before its rename, so a crash can leave a missing blob or a
  stray temporary file, never a partial file under a final name.
* The same content is stored once: an existing blob with the same hash is reused, but only after its
  size and sha256 are checked (a blob damaged behind our back is replaced, never trusted) and its
  directory entry is covered by the batch's second barrier (a concurrent writer may have renamed it
  without syncing its directory yet).
* ``put_stream`` stops reading once ``max_bytes`` is exceeded (``FlowTooLarge``) and leaves nothing.
* ``adopt`` takes a complete file already on the blob file system (a spilled SFTP upload) the same way,
  but renames that file into place instead of copying it: the bytes are written to disk once.
* A full disk (``ENOSPC``, ``EDQUOT``) raises ``StorageFull`` and leaves nothing behind.

Functions are synchronous, plain file I/O; async callers run them in a thread.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import platform
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

from engine.errors import FlowTooLarge, StorageFull

CHUNK_BYTES = 1024 * 1024
TEMP_DIR = "tmp"
_KEY = re.compile(r"^[0-9a-f]{64}$")
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SYNCFS_SINCE = (5, 8)  # syncfs(2) reports write-back errors only from Linux 5.8
SyncMode = Literal["auto", "syncfs", "fsync"]
BlobRef = tuple[str, str, int]  # (key, sha256, size_bytes)


@runtime_checkable
class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def fsync_dir(path: Path) -> None:
    """Make ``path``'s entries (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def syncfs_function() -> Callable[[int], None] | None:
    """Linux ``syncfs(2)`` as ``f(fd)`` raising ``OSError``; None where it is missing or cannot be
    trusted to report write-back errors (not Linux, kernel before 5.8, no such libc symbol)."""
    if sys.platform != "linux":
        return None
    try:
        release = tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])
        libc_syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError, ValueError):
        return None
    if release < _SYNCFS_SINCE:
        return None
    libc_syncfs.argtypes = [ctypes.c_int]
    libc_syncfs.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if libc_syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read ``CHUNK_BYTES`` at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class Spool:
    """A file written piece by piece (``BlobStore.spool``); ``close`` it before handing ``path`` on,
    ``discard`` it in any case (a no-op once ``path`` was moved)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class _Written:
    """A temporary file holding a blob's bytes, not yet durable nor under its final name."""

    tmp_path: Path
    fd: int
    key: str
    size: int


def _chunks_of(source: Iterable[bytes] | Readable) -> Iterator[bytes]:
    if isinstance(source, (list, tuple)):  # the common case, without the Protocol check's cost
        yield from source
    elif isinstance(source, Readable):
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
    else:
        yield from source


class BlobStore:
    """Blobs under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, *, sync: SyncMode = "auto") -> None:
        """``sync``: the durability barrier (module docstring); "auto" takes syncfs where trusted."""
        self.root = Path(root)
        self._tmp = self.root / TEMP_DIR
        syncfs = syncfs_function() if sync != "fsync" else None
        if sync == "syncfs" and syncfs is None:
            raise ValueError("syncfs(2) is not available (or not trusted) on this system")
        self._syncfs = syncfs
        self.barriers = 0  # durability barriers issued (tests and benchmarks read it)

    @property
    def sync_mode(self) -> str:
        return "syncfs" if self._syncfs is not None else "fsync"

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives; ``ValueError`` when ``key`` is not a sha256 hex digest."""
        if not _KEY.match(key):
            raise ValueError(f"invalid blob key {key!r}")
        return self._final_path(key)

    def _final_path(self, key: str) -> Path:
        return self.root / key[:2] / key[2:4] / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def open(self, key: str) -> BinaryIO:
        """Open the blob for reading (``FileNotFoundError`` when absent)."""
        return open(self.path(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        """Remove the blob if present."""
        self.path(key).unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data``; return ``(key, sha256, size_bytes)``."""
        return self.put_stream([data], max_bytes=None)

    def put_stream(self, chunks: Iterable[bytes] | Readable, max_bytes: int | None) -> BlobRef:
        """Store bytes from an iterable of chunks or a binary file; return ``(key, sha256, size_bytes)``.

        Raises ``FlowTooLarge`` as soon as more than ``max_bytes`` arrived (``size_bytes`` is then what
        was read so far), ``StorageFull`` on a full disk; either way no file is left.
        """
        written: list[_Written] = []
        try:
            written.append(self._write_temp(chunks, max_bytes))
            self._commit(written)
        finally:
            self._discard(written)
        return written[0].key, written[0].key, written[0].size

    def put_many(self, contents: Sequence[bytes]) -> list[BlobRef | BaseException]:
        """Store a batch with two durability barriers in all (module docstring); one outcome per item.

        An item whose temporary file cannot be written (e.g. ``StorageFull``) gets its exception and
        the others go on; a failing barrier or rename raises for the whole batch. Every returned
        ``BlobRef`` is durable under its final name.
        """
        outcomes: list[BlobRef | BaseException] = []
        written: list[_Written] = []
        try:
            for data in contents:
                try:
                    item = self._write_temp([data], None)
                except (OSError, StorageFull) as exc:
                    outcomes.append(exc)
                    continue
                written.append(item)
                outcomes.append((item.key, item.key, item.size))
            self._commit(written)
        finally:
            self._discard(written)
        return outcomes

    def adopt(self, path: Path) -> BlobRef:
        """Store the complete file ``path`` (e.g. a spilled upload) without copying it: hashed by reading
        it once, made durable, renamed into place (dropped instead when an intact copy is there already).
        ``path`` is gone afterwards. A file on another file system is copied (``put_stream``) instead.
        Returns ``(key, sha256, size_bytes)``; ``StorageFull`` on a full disk."""
        self._make_dirs(self._tmp, sync=True)  # the store's root exists from here on
        if path.stat().st_dev != self.root.stat().st_dev:
            with open(path, "rb") as source:
                ref = self.put_stream(source, max_bytes=None)
            path.unlink(missing_ok=True)
            return ref
        digest = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY)
        written = _Written(path, fd, "", 0)
        try:
            while chunk := os.read(fd, CHUNK_BYTES):
                digest.update(chunk)
                written.size += len(chunk)
            written.key = digest.hexdigest()
            os.fchmod(fd, 0o640)  # as the blobs written here
            self._commit([written])  # renamed into place, or an intact copy reused
        finally:
            self._discard([written])
        if written.tmp_path == path:  # an intact copy was there already
            path.unlink(missing_ok=True)
        return written.key, written.key, written.size

    def spool(self) -> Spool:
        """A new temporary file beside the blobs (same file system: ``adopt`` renames it into place) for a
        deposit that arrives in pieces. Left over by a crash, it is removed by ``sweep_temp``."""
        self._make_dirs(self._tmp, sync=True)
        path = self._tmp / f"{secrets.token_hex(16)}.spool"
        return Spool(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))

    def _write_temp(self, chunks: Iterable[bytes] | Readable, max_bytes: int | None) -> _Written:
        """Write the bytes to a new temporary file (not yet synced), hashing them on the way."""
        digest = hashlib.sha256()
        size = 0
        try:
            self._make_dirs(self._tmp, sync=True)
            tmp_path = self._tmp / f"{secrets.token_hex(16)}.tmp"
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise
        written = _Written(tmp_path, fd, "", 0)
        try:
            for chunk in _chunks_of(chunks):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise FlowTooLarge(size, max_bytes)
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    count = os.write(fd, view)
                    view = view[count:]
        except BaseException as exc:
            self._discard([written])
            if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise
        written.key, written.size = digest.hexdigest(), size
        return written

    def _commit(self, written: Sequence[_Written]) -> None:
        """Barrier over the temporary files, renames (or verified reuse), barrier over the renames."""
        if not written:
            return
        try:
            self._barrier(files=[w.fd for w in written], dirs=[])
            touched: dict[Path, None] = {}  # directories whose entries must be durable, in order
            placed: set[str] = set()
            for w in written:
                final = self._final_path(w.key)  # a sha256 we computed: no need to re-validate
                if w.key in placed or self._holds_intact(final, w.key, w.size):
                    touched[final.parent] = None  # reused: its entry may not be synced yet
                    continue
                try:
                    w.tmp_path.replace(final)
                except FileNotFoundError:  # first blob of its folder: create it (entries synced below)
                    touched.update(dict.fromkeys(self._make_dirs(final.parent, sync=False)))
                    w.tmp_path.replace(final)
                w.tmp_path = final  # renamed: nothing left to discard
                placed.add(w.key)
                touched[final.parent] = None
            self._barrier(files=[], dirs=list(touched))
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise

    def _barrier(self, *, files: Sequence[int], dirs: Sequence[Path]) -> None:
        """Make the given files' bytes, or the given directories' entries, durable."""
        self.barriers += 1
        if self._syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self._syncfs(fd)  # the whole blob file system: every file and directory above
            finally:
                os.close(fd)
            return
        for file_fd in files:
            os.fsync(file_fd)
        for directory in dirs:
            fsync_dir(directory)

    def _holds_intact(self, final: Path, key: str, size: int) -> bool:
        """Whether ``final`` already holds exactly the blob (size and sha256 re-checked)."""
        try:
            return final.stat().st_size == size and file_sha256(final) == key
        except FileNotFoundError:
            return False

    def _discard(self, written: Sequence[_Written]) -> None:
        """Close the files; remove those not renamed into place."""
        for w in written:
            if w.fd >= 0:
                os.close(w.fd)
                w.fd = -1
            if w.tmp_path.parent == self._tmp:
                w.tmp_path.unlink(missing_ok=True)

    def sweep_temp(self, older_than_s: float = 0.0) -> int:
        """Remove temporary files left by an interrupted write; return how many. Startup only.

        ``older_than_s`` spares younger files: on a folder shared by several processes, another live
        process's write in progress (a write never lasts that long)."""
        if not self._tmp.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - older_than_s
        for entry in self._tmp.iterdir():
            try:
                if entry.is_file() and (older_than_s <= 0 or entry.stat().st_mtime < cutoff):
                    entry.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:  # renamed into place or swept by another process meanwhile
                continue
        return removed

    def _make_dirs(self, directory: Path, *, sync: bool) -> list[Path]:
        """Create ``directory`` (under root); return the parents that gained an entry (fsynced now
        when ``sync``, else left to the caller's barrier)."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        gained: list[Path] = []
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue  # a concurrent writer created it
            gained.append(d.parent)
            if sync:
                fsync_dir(d.parent)
        return gained
