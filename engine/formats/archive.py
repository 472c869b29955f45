"""Unpack a zip, tar or tar.gz flow into its documents, under the limits of ``engine.model.Limits``.

Invariants:

* An archive is recognised from its magic bytes, never from its file name.
* The member count is decided from the zip central directory, or from the tar headers read one by one,
  before any member is extracted; counting stops as soon as a limit is crossed, so a 10,000-member
  archive is refused after reading ``max_archive_members`` headers.
* Nothing is written to disk. Member bytes are read in chunks and the per-member and total limits are
  enforced on the bytes actually produced, never on the sizes the archive declares.
* Absolute paths, ``..`` components, links and device entries refuse the whole archive
  (``ARCHIVE_UNSAFE_PATH``); directories and macOS metadata (``__MACOSX/``, ``._*``, ``.DS_Store``) are
  skipped and do not count as documents.

Problems are raised as ``ArchiveError`` carrying the catalogued finding.
"""

from __future__ import annotations

import io
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from engine.catalogue import finding
from engine.model import Finding, Limits

_CHUNK_BYTES = 64 * 1024
# Small members may compress very well legitimately (a tiny XML of repeated tags); the ratio guard is
# for bombs, which are large once unpacked.
_RATIO_MIN_BYTES = 1024 * 1024
# What a corrupt or truncated archive raises (zlib/lzma errors come from damaged compressed streams).
_UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,  # zipfile: encrypted member without a password
)
_JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


class ArchiveError(Exception):
    """The archive cannot be unpacked safely; ``finding`` says why."""

    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


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
    opened: str | IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        members = _unpack_zip(opened, limits) if kind == "zip" else _unpack_tar(opened, limits, compressed_bytes)
    except ArchiveError:
        raise
    except _UNREADABLE as exc:
        raise ArchiveError(
            finding("ARCHIVE_UNREADABLE", f"The archive cannot be read ({type(exc).__name__}).")
        ) from None
    if not members:
        raise ArchiveError(finding("ARCHIVE_EMPTY"))
    return tuple(members)


def _problem(code: str, message: str | None = None, document: str | None = None) -> ArchiveError:
    return ArchiveError(finding(code, message, document=document))


def _check_name(name: str) -> None:
    clean = name.replace("\\", "/")
    parts = clean.split("/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in parts:
        raise _problem("ARCHIVE_UNSAFE_PATH", f"Unsafe member path {name!r}.", document=name)


def _is_junk(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    base = parts[-1]
    return "__MACOSX" in parts or base.startswith("._") or base in _JUNK_NAMES or base == ""


def _counted(names: Iterator[str], limits: Limits) -> None:
    """Raise when the documents among ``names`` exceed the limits (checked while iterating)."""
    documents = 0
    for entries, name in enumerate(names, start=1):
        if entries > limits.max_archive_members:
            raise _problem(
                "ARCHIVE_TOO_MANY_DOCUMENTS",
                f"The archive holds more than {limits.max_archive_members} entries.",
            )
        if not _is_junk(name):
            documents += 1
            if documents > limits.max_documents:
                raise _problem(
                    "ARCHIVE_TOO_MANY_DOCUMENTS",
                    f"The archive holds more than {limits.max_documents} documents.",
                )


def _read_bounded(stream: _Readable, name: str, limits: Limits, total_bytes: int) -> bytes:
    """Read a member in chunks, stopping as soon as the member or the flow limit is crossed."""
    chunks: list[bytes] = []
    size_bytes = 0
    while chunk := stream.read(_CHUNK_BYTES):
        size_bytes += len(chunk)
        if size_bytes > limits.max_member_bytes:
            raise _problem("ARCHIVE_MEMBER_TOO_LARGE", document=name)
        if total_bytes + size_bytes > limits.max_unpacked_bytes:
            raise _problem("ARCHIVE_TOO_LARGE", document=name)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_ratio(name: str, unpacked_bytes: int, packed_bytes: int, limits: Limits) -> None:
    if unpacked_bytes >= _RATIO_MIN_BYTES and unpacked_bytes > limits.max_compression_ratio * max(packed_bytes, 1):
        raise _problem(
            "ARCHIVE_COMPRESSION_RATIO",
            f"Member {name!r} expands more than {limits.max_compression_ratio} times.",
            document=name,
        )


def _unpack_zip(source: str | IO[bytes], limits: Limits) -> list[Member]:
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()  # the central directory only: nothing is decompressed yet
        _counted((i.filename for i in infos if not i.is_dir()), limits)
        wanted = []
        for info in infos:
            _check_name(info.filename)
            mode = info.external_attr >> 16
            if mode and (stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
                raise _problem("ARCHIVE_UNSAFE_PATH", f"Member {info.filename!r} is a link.", info.filename)
            if info.is_dir() or _is_junk(info.filename):
                continue
            # Declared sizes are only used to refuse early; the reads below enforce the real ones.
            _check_ratio(info.filename, info.file_size, info.compress_size, limits)
            if info.file_size > limits.max_member_bytes:
                raise _problem("ARCHIVE_MEMBER_TOO_LARGE", document=info.filename)
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


def _unpack_tar(source: str | IO[bytes], limits: Limits, compressed_bytes: int) -> list[Member]:
    with (
        tarfile.open(source, mode="r:*") if isinstance(source, str) else tarfile.open(fileobj=source, mode="r:*")
    ) as archive:
        # First pass: headers only. tarfile skips member data without keeping it; declared sizes are
        # checked here so a huge member is refused before it is decompressed.
        infos: list[tarfile.TarInfo] = []
        declared_bytes = 0
        for info in _tar_headers(archive, limits):
            _check_name(info.name)
            if info.issym() or info.islnk() or info.isdev() or info.isfifo():
                raise _problem("ARCHIVE_UNSAFE_PATH", f"Member {info.name!r} is a link or device.", info.name)
            if not info.isfile() or _is_junk(info.name):
                continue
            if info.size > limits.max_member_bytes:
                raise _problem("ARCHIVE_MEMBER_TOO_LARGE", document=info.name)
            declared_bytes += info.size
            if declared_bytes > limits.max_unpacked_bytes:
                raise _problem("ARCHIVE_TOO_LARGE", document=info.name)
            _check_ratio(info.name, declared_bytes, compressed_bytes, limits)
            infos.append(info)
        members: list[Member] = []
        total_bytes = 0
        for info in infos:
            stream = archive.extractfile(info)
            if stream is None:
                continue
            data = _read_bounded(stream, info.name, limits, total_bytes)
            total_bytes += len(data)
            members.append(Member(info.name, data))
        return members


def _tar_headers(archive: tarfile.TarFile, limits: Limits) -> Iterator[tarfile.TarInfo]:
    """Yield headers one by one, refusing as soon as the entry or document count is crossed."""
    entries = 0
    documents = 0
    while (info := archive.next()) is not None:
        entries += 1
        if entries > limits.max_archive_members:
            raise _problem(
                "ARCHIVE_TOO_MANY_DOCUMENTS",
                f"The archive holds more than {limits.max_archive_members} entries.",
            )
        if info.isfile() and not _is_junk(info.name):
            documents += 1
            if documents > limits.max_documents:
                raise _problem(
                    "ARCHIVE_TOO_MANY_DOCUMENTS",
                    f"The archive holds more than {limits.max_documents} documents.",
                )
        yield info
