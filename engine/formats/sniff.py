"""Guess a flow's syntax from its first bytes, at the door, when the depositor did not declare one.

The flow number carries the interface number (DESIGN §5), so a syntax is needed before the flow exists.
This runs in the daemon's own process, so it is a cheap, bounded look: no XML parse, at most
``PREFIX_BYTES`` of the deposit read, and of an archive only the first member's first ``HEAD_BYTES``:

* a zip is read from its local headers at the start of the prefix; its central directory (at the end,
  as large as the archive has entries) is never read;
* a tar.gz is inflated from the prefix only, to at most ``_EXPANDED_BYTES``, and its headers are parsed
  from those blocks (``engine.formats.headers``), so a pax or long-name header larger than the window
  ends the look, unread.

Anything that does not fit the window gives None: the transport check, in a validation process and under
the flow's limits, detects the syntax properly and rejects a flow whose content does not fit.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

from engine.formats.archive import is_junk
from engine.formats.headers import ArchiveError, TarReader
from engine.model import Syntax

HEAD_BYTES = 8192
PREFIX_BYTES = 64 * 1024  # the most of a deposit sniffing reads
_EXPANDED_BYTES = 96 * 1024  # the most a tar.gz prefix is inflated to
_MEMBERS_LOOKED_AT = 16
_ARCHIVE_HEADS = (b"PK\x03\x04", b"\x1f\x8b")  # zip, gzip (tar.gz): the syntax is in a member
_UBL = re.compile(rb"urn:oasis:names:specification:ubl:schema:xsd:(Invoice|CreditNote)-2")
_CII = re.compile(rb"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_STORED, _DEFLATED = 0, 8
_ENCRYPTED, _DATA_DESCRIPTOR = 0x1, 0x8


def sniff_syntax(head: bytes, whole: bytes | None = None) -> Syntax | None:
    """The syntax the content looks like, or None when it cannot be told cheaply.

    ``head`` is the start of the file; ``whole`` (optional) lets archives be peeked into (only its
    first ``PREFIX_BYTES`` are looked at).
    """
    if head.startswith(b"%PDF"):
        return Syntax.CII_FACTURX
    if whole is not None and head.startswith(_ARCHIVE_HEADS):
        member = _first_member_head(whole[:PREFIX_BYTES])
        return sniff_syntax(member) if member else None
    if _UBL.search(head[:HEAD_BYTES]):
        return Syntax.UBL_INVOICE
    if _CII.search(head[:HEAD_BYTES]):
        return Syntax.CII_16B
    return None


def sniff_file(path: Path) -> Syntax | None:
    """``sniff_syntax`` of a stored file, from its first ``PREFIX_BYTES``."""
    with open(path, "rb") as fh:
        prefix = fh.read(PREFIX_BYTES)
    return sniff_syntax(prefix[:HEAD_BYTES], prefix)


def _first_member_head(prefix: bytes) -> bytes | None:
    """The first ``HEAD_BYTES`` of the first regular member of a zip or tar.gz prefix, or None."""
    try:
        if prefix.startswith(b"PK"):
            return _zip_head(prefix)
        return _tar_gz_head(prefix)
    except (ArchiveError, zlib.error, struct.error, ValueError):
        return None


def _zip_head(prefix: bytes) -> bytes | None:
    """Walk the local headers from the start of the file, never the central directory."""
    offset = 0
    for _ in range(_MEMBERS_LOOKED_AT):
        fields = _LOCAL_HEADER.unpack_from(prefix, offset)
        if fields[0] != b"PK\x03\x04":
            return None
        _, _, flags, method, _, _, _, compressed_bytes, _, name_bytes, extra_bytes = fields
        name_start = offset + _LOCAL_HEADER.size
        name = prefix[name_start : name_start + name_bytes].decode("utf-8", errors="replace")
        data_start = name_start + name_bytes + extra_bytes
        if flags & _ENCRYPTED:
            return None
        if name.endswith("/") or is_junk(name):
            if flags & _DATA_DESCRIPTOR:
                return None  # where the next header starts is only known from the central directory
            offset = data_start + compressed_bytes
            continue
        data = prefix[data_start:]
        if method == _STORED:
            return data[:HEAD_BYTES]
        if method == _DEFLATED:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data, HEAD_BYTES)
        return None
    return None


def _tar_gz_head(prefix: bytes) -> bytes | None:
    """Inflate the prefix to a bounded window and read the tar headers found in it."""
    expanded = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(prefix, _EXPANDED_BYTES)
    reader = TarReader(io.BytesIO(expanded), max_header_bytes=_EXPANDED_BYTES)
    for _ in range(_MEMBERS_LOOKED_AT):
        entry = reader.next()
        if entry is None:
            return None
        if entry.kind == "file" and not is_junk(entry.name):
            return reader.read_data(min(HEAD_BYTES, len(expanded) - reader.position))
    return None
