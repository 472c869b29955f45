"""Content-addressed storage of deposited bytes: ``root/ab/cd/<sha256>``, the key being the sha256.

Invariants:

* A blob appears under its final name only complete and on disk: bytes go to a temporary file in
  ``root/tmp/`` (same file system), are ``fsync``ed, renamed into place, and the directory is
  ``fsync``ed. Nothing under a final name is ever partial; ``sweep_temp()`` removes the temporary files
  a crash left behind (call it at startup, before any write).
* The same content is stored once: an existing blob with the same hash is reused.
* ``put_stream`` stops reading once ``max_bytes`` is exceeded (``FlowTooLarge``) and leaves nothing.
* A full disk (``ENOSPC``, ``EDQUOT``) raises ``StorageFull`` and leaves nothing behind.

Functions are synchronous, plain file I/O; async callers run them in a thread.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from engine.errors import FlowTooLarge, StorageFull

CHUNK_BYTES = 1024 * 1024
TEMP_DIR = "tmp"
_KEY = re.compile(r"^[0-9a-f]{64}$")
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@runtime_checkable
class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks_of(source: Iterable[bytes] | Readable) -> Iterator[bytes]:
    if isinstance(source, Readable):
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
    else:
        yield from source


class BlobStore:
    """Blobs under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / TEMP_DIR

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives; ``ValueError`` when ``key`` is not a sha256 hex digest."""
        if not _KEY.match(key):
            raise ValueError(f"invalid blob key {key!r}")
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

    def put_bytes(self, data: bytes) -> tuple[str, str, int]:
        """Store ``data``; return ``(key, sha256, size_bytes)``."""
        return self.put_stream([data], max_bytes=None)

    def put_stream(self, chunks: Iterable[bytes] | Readable, max_bytes: int | None) -> tuple[str, str, int]:
        """Store bytes from an iterable of chunks or a binary file; return ``(key, sha256, size_bytes)``.

        Raises ``FlowTooLarge`` as soon as more than ``max_bytes`` arrived (``size_bytes`` is then what
        was read so far), ``StorageFull`` on a full disk; either way no file is left.
        """
        digest = hashlib.sha256()
        size = 0
        with self._temp_file() as (tmp_path, fd):
            for chunk in _chunks_of(chunks):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise FlowTooLarge(size, max_bytes)
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            os.fsync(fd)
            key = digest.hexdigest()
            final = self.path(key)
            if final.is_file():
                return key, key, size  # same content already stored; the temp file is removed
            self._make_dirs(final.parent)
            tmp_path.replace(final)
            _fsync_dir(final.parent)
        return key, key, size

    def sweep_temp(self) -> int:
        """Remove temporary files left by an interrupted write; return how many. Startup only."""
        if not self._tmp.is_dir():
            return 0
        removed = 0
        for entry in self._tmp.iterdir():
            if entry.is_file():
                entry.unlink(missing_ok=True)
                removed += 1
        return removed

    @contextmanager
    def _temp_file(self) -> Iterator[tuple[Path, int]]:
        """A new temporary file, open for writing; removed on exit unless renamed into place."""
        try:
            self._make_dirs(self._tmp)
            tmp_path = self._tmp / f"{secrets.token_hex(16)}.tmp"
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise
        try:
            yield tmp_path, fd
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise
        finally:
            os.close(fd)
            tmp_path.unlink(missing_ok=True)

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` (under root) and fsync each parent that gained an entry."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue  # a concurrent writer created it
            _fsync_dir(d.parent)
