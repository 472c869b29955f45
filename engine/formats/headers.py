"""Read archive directories under the budget of ``engine.model.Limits``, before any member is expanded.

Invariants:

* Tar headers are parsed here, from the 512-byte blocks: ``tarfile`` never sees an untrusted header,
  because it reads a pax or GNU long-name header whole before anything can look at its size. An
  extended header (pax ``x``/``g``, GNU ``L``/``K``) is refused from its declared size, unread, when the
  extended headers of one entry would exceed ``max_archive_header_bytes``; of a pax header only the
  keys that matter (``path``, ``linkpath``, ``size``) are kept.
* Sparse members (GNU ``S``, pax ``GNU.sparse.*``), volume labels, multi-volume parts and unknown entry
  types are refused (``ARCHIVE_UNSUPPORTED_MEMBER``): their maps are never read.
* A zip's end-of-central-directory record (zip64 included) is read first, from the last 64 KiB of the
  file, exactly where ``zipfile`` reads it: a declared entry count over ``max_archive_members`` is
  refused before the central directory is read. The directory is then walked entry by entry (46 bytes
  and a seek each), so a record that understates the count is caught after ``max_archive_members``
  entries, and an entry whose name, extra field and comment exceed ``max_archive_header_bytes`` is
  refused.

Problems are raised as ``ArchiveError`` carrying the catalogued finding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO, Protocol

from engine.catalogue import finding
from engine.model import Finding, Limits

BLOCK_BYTES = 512
_CHUNK_BYTES = 64 * 1024
_REGULAR = frozenset({b"0", b"\0", b"7"})  # file, old-style file, contiguous file
_LINKS = frozenset({b"1", b"2"})
_DEVICES = frozenset({b"3", b"4", b"6"})
_EXTENDED = frozenset({b"x", b"g", b"L", b"K"})
_PAX_KEPT = frozenset({"path", "linkpath", "size"})
_GNU_MAGIC = b"ustar  \0"

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_MAX_COMMENT_BYTES = 65535


class ArchiveError(Exception):
    """The archive cannot be unpacked safely; ``finding`` says why."""

    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


def problem(code: str, message: str | None = None, document: str | None = None) -> ArchiveError:
    return ArchiveError(finding(code, message, document=document))


def _unreadable(reason: str) -> ArchiveError:
    return problem("ARCHIVE_UNREADABLE", f"The archive cannot be read ({reason}).")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# Tar -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarEntry:
    name: str
    kind: str  # "file", "dir", "link" or "device"
    size: int  # bytes of data that follow the header (0 unless a file)


class TarReader:
    """The entries of an (uncompressed) tar stream, one by one.

    ``next()`` skips whatever data of the previous entry was not read; ``read_data()`` reads the data
    of the entry ``next()`` returned. ``position`` counts the bytes consumed from the stream.
    """

    def __init__(self, stream: Readable, max_header_bytes: int) -> None:
        self._stream = stream
        self._max_header_bytes = max_header_bytes
        self._global: dict[str, str] = {}
        self._unread = 0  # data and padding of the current entry not consumed yet
        self._data_left = 0
        self.position = 0

    def next(self) -> TarEntry | None:
        """The next entry, or None at the end of the archive."""
        self._consume(self._unread)
        self._unread = self._data_left = 0
        local: dict[str, str] = {}
        extended_bytes = 0
        while True:
            block = self._read_block()
            if block is None or block == bytes(BLOCK_BYTES):
                return None
            _verify_checksum(block)
            kind = block[156:157]
            size = _number(block[124:136])
            if kind not in _EXTENDED:
                break
            extended_bytes += BLOCK_BYTES + _padded(size)
            if size > self._max_header_bytes or extended_bytes > self._max_header_bytes:
                raise problem(
                    "ARCHIVE_HEADER_TOO_LARGE",
                    f"A tar entry's extended headers exceed {self._max_header_bytes} bytes.",
                )
            payload = self._read_exact(_padded(size))
            self._extend(kind, payload[:size], local)
        return self._entry(block, kind, size, {**self._global, **local})

    def read_data(self, max_bytes: int | None = None) -> bytes:
        """The current entry's data (at most ``max_bytes`` of it)."""
        wanted = self._data_left if max_bytes is None else min(self._data_left, max_bytes)
        chunks = []
        while wanted > 0:
            chunk = self._read_exact(min(wanted, _CHUNK_BYTES))
            chunks.append(chunk)
            wanted -= len(chunk)
            self._data_left -= len(chunk)
            self._unread -= len(chunk)
        return b"".join(chunks)

    def _entry(self, block: bytes, kind: bytes, size: int, pax: dict[str, str]) -> TarEntry:
        if kind == b"S" or any(key.startswith("GNU.sparse.") for key in pax):
            raise problem("ARCHIVE_UNSUPPORTED_MEMBER", "The archive holds a sparse file.")
        name = pax.get("path") or _name_of(block)
        if "size" in pax:
            size = _pax_number(pax["size"])
        if kind in _REGULAR and not (kind == b"\0" and name.endswith("/")):
            self._unread = _padded(size)
            self._data_left = size
            return TarEntry(name, "file", size)
        if kind in (b"5", b"\0"):
            return TarEntry(name.rstrip("/") or name, "dir", 0)
        if kind in _LINKS:
            return TarEntry(name, "link", 0)
        if kind in _DEVICES:
            return TarEntry(name, "device", 0)
        raise problem(
            "ARCHIVE_UNSUPPORTED_MEMBER",
            f"Member {name!r} has the refused tar entry type {kind!r}.",
            document=name,
        )

    def _extend(self, kind: bytes, payload: bytes, local: dict[str, str]) -> None:
        if kind == b"L":
            local["path"] = _text(payload.split(b"\0", 1)[0])
        elif kind == b"K":
            local["linkpath"] = _text(payload.split(b"\0", 1)[0])
        else:
            records = _pax_records(payload)
            (self._global if kind == b"g" else local).update(records)

    def _read_block(self) -> bytes | None:
        """The next header block, or None at a clean end of stream (an archive without its zero blocks)."""
        first = self._stream.read(1)
        return self._read_exact(BLOCK_BYTES - 1, first) if first else None

    def _read_exact(self, size: int, start: bytes = b"") -> bytes:
        """``start`` and the next ``size`` bytes; raises when the stream ends first."""
        parts = [start]
        missing = size
        while missing > 0:
            more = self._stream.read(missing)
            if not more:
                raise _unreadable("truncated tar")
            parts.append(more)
            missing -= len(more)
        self.position += len(start) + size
        return b"".join(parts)

    def _consume(self, size: int) -> None:
        while size > 0:
            size -= len(self._read_exact(min(size, _CHUNK_BYTES)))


def _padded(size: int) -> int:
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES


def _verify_checksum(block: bytes) -> None:
    stored = _number(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = sum(struct.unpack("148b", block[:148])) + 8 * 32 + sum(struct.unpack("356b", block[156:]))
    if stored not in (unsigned, signed):
        raise _unreadable("bad tar header checksum")


def _number(field: bytes) -> int:
    """A tar numeric field: NUL/space-terminated octal, or GNU base-256 (first byte 0x80 or 0xff)."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            raise _unreadable("negative tar number")
        return value
    digits = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(digits or b"0", 8)
    except ValueError:
        raise _unreadable("bad tar number") from None


def _pax_number(text: str) -> int:
    if not text.isdigit():
        raise _unreadable("bad pax size")
    return int(text)


def _name_of(block: bytes) -> str:
    name = block[:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar" and block[257:265] != _GNU_MAGIC:
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return _text(name)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _pax_records(payload: bytes) -> dict[str, str]:
    """The kept ``key=value`` records of a pax header (``"%d %s=%s\\n"``, the length counting itself)."""
    records: dict[str, str] = {}
    position = 0
    while position < len(payload) and payload[position] != 0:
        space = payload.find(b" ", position, position + 20)
        if space < 0 or not payload[position:space].isdigit():
            raise _unreadable("bad pax header")
        end = position + int(payload[position:space])
        record = payload[space + 1 : end]
        if end > len(payload) or end <= space or not record.endswith(b"\n") or b"=" not in record:
            raise _unreadable("bad pax header")
        key, value = record[:-1].split(b"=", 1)
        text_key = _text(key)
        if text_key in _PAX_KEPT or text_key.startswith("GNU.sparse."):
            records[text_key] = _text(value)
        position = end
    return records


# Zip -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipDirectory:
    entries: int  # as the end-of-central-directory record declares them
    start: int  # file offset of the central directory
    size_bytes: int


def check_zip_directory(handle: IO[bytes], limits: Limits) -> ZipDirectory:
    """Refuse a zip whose central directory is over budget, reading its end record first."""
    directory = _end_record(handle)
    too_many = problem(
        "ARCHIVE_TOO_MANY_DOCUMENTS", f"The archive holds more than {limits.max_archive_members} entries."
    )
    if directory.entries > limits.max_archive_members:
        raise too_many
    handle.seek(directory.start)
    walked_bytes = entries = 0
    while walked_bytes < directory.size_bytes:  # the loop zipfile runs, one entry at a time
        raw = handle.read(_CENTRAL_ENTRY.size)
        if len(raw) != _CENTRAL_ENTRY.size or raw[:4] != b"PK\x01\x02":
            raise _unreadable("bad central directory")
        fields = _CENTRAL_ENTRY.unpack(raw)
        entries += 1
        if entries > limits.max_archive_members:
            raise too_many
        extra_bytes = fields[12] + fields[13] + fields[14]  # name, extra field, comment
        if extra_bytes > limits.max_archive_header_bytes:
            raise problem(
                "ARCHIVE_HEADER_TOO_LARGE",
                f"A zip entry's name, extra field and comment exceed {limits.max_archive_header_bytes} bytes.",
            )
        handle.seek(extra_bytes, 1)
        walked_bytes += _CENTRAL_ENTRY.size + extra_bytes
    handle.seek(0)
    return directory


def _end_record(handle: IO[bytes]) -> ZipDirectory:
    """The end-of-central-directory record, found as ``zipfile._EndRecData`` finds it."""
    file_bytes = handle.seek(0, 2)
    if file_bytes < _EOCD.size:
        raise _unreadable("no end of central directory")
    handle.seek(file_bytes - _EOCD.size)
    tail = handle.read(_EOCD.size)
    if tail[:4] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        location = file_bytes - _EOCD.size
    else:
        window_start = max(file_bytes - _MAX_COMMENT_BYTES - _EOCD.size, 0)
        handle.seek(window_start)
        window = handle.read()
        found = window.rfind(b"PK\x05\x06")
        if found < 0 or found + _EOCD.size > len(window):
            raise _unreadable("no end of central directory")
        tail = window[found : found + _EOCD.size]
        location = window_start + found
    _, _, _, _, entries, size_bytes, _, _ = _EOCD.unpack(tail)
    start = location - size_bytes
    if location >= _EOCD64_LOCATOR.size + _EOCD64.size:
        handle.seek(location - _EOCD64_LOCATOR.size)
        locator = handle.read(_EOCD64_LOCATOR.size)
        if locator[:4] == b"PK\x06\x07":
            handle.seek(location - _EOCD64_LOCATOR.size - _EOCD64.size)
            record64 = _EOCD64.unpack(handle.read(_EOCD64.size))
            if record64[0] == b"PK\x06\x06":
                entries, size_bytes = record64[7], record64[8]
                start = location - _EOCD64_LOCATOR.size - _EOCD64.size - size_bytes
    if start < 0:
        raise _unreadable("bad offset for central directory")
    return ZipDirectory(entries, start, size_bytes)
