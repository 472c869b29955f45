"""Unpack a zip, tar or tar.gz flow into its documents, under the limits of ``engine.model.Limits``.

Invariants:

* An archive is recognised from its magic bytes, never from its file name.
* Every limit is checked on what a header declares before the bytes it describes are read or expanded.
  A zip's entry count comes from its end-of-central-directory record, then from its central directory
  walked entry by entry (``engine.formats.headers``), before ``zipfile`` parses the directory or any
  member is inflated. A tar is read once, header by header, from its 512-byte blocks
  (``engine.formats.headers``, never ``tarfile``): an entry's count, size, the total size and the
  compression ratio are checked on its header before its data is read, and every entry's data counts,
  read or skipped, so the work before a refusal is bounded by the limits.
* Nothing is written to disk. Member bytes are read in chunks and the per-member and total limits are
  enforced on the bytes actually produced, never only on the sizes the archive declares.
* Absolute paths, ``..`` components, links and device entries refuse the whole archive
  (``ARCHIVE_UNSAFE_PATH``); directories and macOS metadata (``__MACOSX/``, ``._*``, ``.DS_Store``) are
  skipped and do not count as documents.

Problems are raised as ``ArchiveError`` carrying the catalogued finding.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO

from engine.catalogue import finding
from engine.formats.headers import ArchiveError, Readable, TarReader, check_zip_directory, problem
from engine.model import Limits

__all__ = ["ArchiveError", "Member", "archive_kind", "is_junk", "unpack"]

_CHUNK_BYTES = 64 * 1024
# Small members may compress very well legitimately (a tiny XML of repeated tags); the ratio guard is
# for bombs, which are large once unpacked.
_RATIO_MIN_BYTES = 1024 * 1024
# What a corrupt or truncated archive raises (zlib/lzma errors come from damaged compressed streams).
_UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,  # zipfile: encrypted member without a password
)
_JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes


def archive_kind(head: bytes) -> str | None:
    """``"zip"``, ``"tar"`` (plain or compressed) or None, from the first 512 bytes."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return "tar"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def unpack(source: str | bytes, kind: str, limits: Limits, compressed_bytes: int) -> tuple[Member, ...]:
    """Read every document of the archive (its path, or its bytes); raise ``ArchiveError`` on any violation."""
    try:
        with ExitStack() as stack:
            handle: IO[bytes] = (
                io.BytesIO(source) if isinstance(source, bytes) else stack.enter_context(open(source, "rb"))
            )
            members = _unpack_zip(handle, limits) if kind == "zip" else _unpack_tar(handle, limits, compressed_bytes)
    except ArchiveError:
        raise
    except _UNREADABLE as exc:
        raise ArchiveError(
            finding("ARCHIVE_UNREADABLE", f"The archive cannot be read ({type(exc).__name__}).")
        ) from None
    if not members:
        raise ArchiveError(finding("ARCHIVE_EMPTY"))
    return tuple(members)


def is_junk(name: str) -> bool:
    """Directories and desktop metadata (``__MACOSX/``, ``._*``, ``.DS_Store``): skipped, never documents."""
    parts = name.replace("\\", "/").split("/")
    base = parts[-1]
    return "__MACOSX" in parts or base.startswith("._") or base in _JUNK_NAMES or base == ""


def _check_name(name: str) -> None:
    clean = name.replace("\\", "/")
    parts = clean.split("/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in parts:
        raise problem("ARCHIVE_UNSAFE_PATH", f"Unsafe member path {name!r}.", document=name)


class _Counter:
    """Counts entries and documents, refusing as soon as either limit is crossed."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._entries = 0
        self._documents = 0

    def entry(self) -> None:
        self._entries += 1
        if self._entries > self._limits.max_archive_members:
            raise problem(
                "ARCHIVE_TOO_MANY_DOCUMENTS",
                f"The archive holds more than {self._limits.max_archive_members} entries.",
            )

    def document(self) -> None:
        self._documents += 1
        if self._documents > self._limits.max_documents:
            raise problem(
                "ARCHIVE_TOO_MANY_DOCUMENTS",
                f"The archive holds more than {self._limits.max_documents} documents.",
            )


def _counted(names: Iterator[str], limits: Limits) -> None:
    """Raise when the entries or documents among ``names`` exceed the limits (checked while iterating)."""
    counter = _Counter(limits)
    for name in names:
        counter.entry()
        if not is_junk(name):
            counter.document()


def _read_bounded(stream: Readable, name: str, limits: Limits, total_bytes: int) -> bytes:
    """Read a member in chunks, stopping as soon as the member or the flow limit is crossed."""
    chunks: list[bytes] = []
    size_bytes = 0
    while chunk := stream.read(_CHUNK_BYTES):
        size_bytes += len(chunk)
        if size_bytes > limits.max_member_bytes:
            raise problem("ARCHIVE_MEMBER_TOO_LARGE", document=name)
        if total_bytes + size_bytes > limits.max_unpacked_bytes:
            raise problem("ARCHIVE_TOO_LARGE", document=name)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_ratio(name: str, unpacked_bytes: int, packed_bytes: int, limits: Limits) -> None:
    if unpacked_bytes >= _RATIO_MIN_BYTES and unpacked_bytes > limits.max_compression_ratio * max(packed_bytes, 1):
        raise problem(
            "ARCHIVE_COMPRESSION_RATIO",
            f"Member {name!r} expands more than {limits.max_compression_ratio} times.",
            document=name,
        )


def _unpack_zip(handle: IO[bytes], limits: Limits) -> list[Member]:
    check_zip_directory(handle, limits)  # the entry count and sizes, before zipfile parses the directory
    with zipfile.ZipFile(handle) as archive:
        infos = archive.infolist()  # the central directory only: nothing is decompressed yet
        _counted((i.filename for i in infos if not i.is_dir()), limits)
        wanted = []
        for info in infos:
            _check_name(info.filename)
            mode = info.external_attr >> 16
            if mode and (stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
                raise problem("ARCHIVE_UNSAFE_PATH", f"Member {info.filename!r} is a link.", info.filename)
            if info.is_dir() or is_junk(info.filename):
                continue
            # Declared sizes are only used to refuse early; the reads below enforce the real ones.
            _check_ratio(info.filename, info.file_size, info.compress_size, limits)
            if info.file_size > limits.max_member_bytes:
                raise problem("ARCHIVE_MEMBER_TOO_LARGE", document=info.filename)
            wanted.append(info)
        members: list[Member] = []
        total_bytes = 0
        for info in wanted:
            with archive.open(info) as stream:
                data = _read_bounded(_RatioGuard(stream, info, limits), info.filename, limits, total_bytes)
            total_bytes += len(data)
            members.append(Member(info.filename, data))
        return members


class _RatioGuard:
    """Wraps a zip member stream and checks the real expansion ratio while it is read."""

    def __init__(self, stream: IO[bytes], info: zipfile.ZipInfo, limits: Limits) -> None:
        self._stream = stream
        self._info = info
        self._limits = limits
        self._read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._read_bytes += len(chunk)
        _check_ratio(self._info.filename, self._read_bytes, self._info.compress_size, self._limits)
        return chunk


def tar_stream(handle: IO[bytes]) -> io.BufferedIOBase | IO[bytes]:
    """The uncompressed tar bytes of ``handle`` (gzip, bzip2, xz or plain), decompressed as they are read."""
    magic = handle.read(6)
    handle.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=handle, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(handle, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(handle, mode="rb")
    return handle


def _unpack_tar(handle: IO[bytes], limits: Limits, compressed_bytes: int) -> list[Member]:
    """One pass over the tar: each header is checked before its data is read or skipped."""
    with tar_stream(handle) as stream:
        reader = TarReader(stream, limits.max_archive_header_bytes)
        counter = _Counter(limits)
        members: list[Member] = []
        data_bytes = 0  # every entry's data, read or skipped
        while (entry := reader.next()) is not None:
            counter.entry()
            _check_name(entry.name)
            if entry.kind in ("link", "device"):
                raise problem("ARCHIVE_UNSAFE_PATH", f"Member {entry.name!r} is a link or device.", entry.name)
            if entry.size > limits.max_member_bytes:
                raise problem("ARCHIVE_MEMBER_TOO_LARGE", document=entry.name)
            data_bytes += entry.size
            if data_bytes > limits.max_unpacked_bytes:
                raise problem("ARCHIVE_TOO_LARGE", document=entry.name)
            _check_ratio(entry.name, reader.position + entry.size, compressed_bytes, limits)
            if entry.kind != "file" or is_junk(entry.name):
                continue
            counter.document()
            members.append(Member(entry.name, reader.read_data()))
        return members
