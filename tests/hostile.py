"""Hostile inputs, built small on disk, and a child process that measures what a check costs.

The builders write files of a few MB that declare (or expand to) GBs: a tar.gz whose pax header declares
2 GiB, a PDF of big-but-compressible attachments, a zip whose central directory lists 300,000 entries.
``measure`` runs one check in a fresh interpreter and reports its codes, wall time and how much its
peak RSS grew past the imports, so one test's allocations never hide another's.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GIB = 1024 * MIB
_ZEROS_MEMBER_BYTES = 64 * MIB

# The child: imports first (their memory is the baseline), then one call, then one JSON line.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
from engine.model import Limits
from engine.technical import transport_check
from engine.formats.sniff import sniff_file, sniff_syntax, HEAD_BYTES

mode, path = sys.argv[1], Path(sys.argv[2])
baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
if mode == "check":
    result = transport_check(str(path), path.name, None, Limits())
    outcome = sorted({f.code for f in result.findings})
elif mode == "check-bytes":
    data = path.read_bytes()
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = transport_check(data, path.name, None, Limits())
    outcome = sorted({f.code for f in result.findings})
elif mode == "sniff-file":
    outcome = str(sniff_file(path))
else:  # sniff-bytes: what a gRPC deposit does with the bytes it holds
    data = path.read_bytes()
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    outcome = str(sniff_syntax(data[:HEAD_BYTES], data))
elapsed_s = time.monotonic() - started
growth_bytes = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) * 1024
print(json.dumps({"outcome": outcome, "elapsed_s": elapsed_s, "growth_bytes": growth_bytes}))
"""


@dataclass(frozen=True)
class Measured:
    outcome: object  # sorted finding codes (checks) or the sniffed syntax as text
    elapsed_s: float
    growth_bytes: int  # peak RSS past the imports


def measure(mode: str, path: Path, pythonpath: Path = REPO, timeout_s: float = 120) -> Measured:
    """Run ``mode`` ("check", "check-bytes", "sniff-file", "sniff-bytes") on ``path`` in a child process."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=pythonpath,
        check=True,
    )
    fields = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(fields["outcome"], fields["elapsed_s"], fields["growth_bytes"])


# Tar -------------------------------------------------------------------------------------------------


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One 512-byte GNU header (base-256 sizes for anything past 8 GiB)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.GNU_FORMAT)


def pax_header(records: dict[str, str], kind: bytes = tarfile.XHDTYPE) -> bytes:
    """A pax extended header (``"%d %s=%s\\n"`` records, the length counting itself) and its payload."""
    payload = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = previous = 0
        while True:  # the length's own digits count in the length
            length = len(body) + len(str(previous))
            if length == previous:
                break
            previous = length
        payload += str(length).encode() + body
    return tar_header("././@PaxHeader", len(payload), kind) + _padded(payload)


def tar_member(name: str, data: bytes) -> bytes:
    """A regular member: its header and its data, padded to whole blocks."""
    return tar_header(name, len(data)) + _padded(data)


def _padded(data: bytes) -> bytes:
    return data.ljust(-(-len(data) // 512) * 512, b"\0")


def _zeros_gzip(total_bytes: int) -> bytes:
    """``total_bytes`` of zeros as gzip members (a multi-member gzip is one stream): ~1 KB per MiB."""
    member = gzip.compress(bytes(_ZEROS_MEMBER_BYTES), compresslevel=9)
    whole, rest = divmod(total_bytes, _ZEROS_MEMBER_BYTES)
    return member * whole + (gzip.compress(bytes(rest), compresslevel=9) if rest else b"")


def huge_extended_header(path: Path, kind: bytes = tarfile.XHDTYPE, declared_bytes: int = 2 * GIB) -> Path:
    """A tar.gz whose first entry is an extended header (pax ``x`` or GNU long name ``L``) declaring
    ``declared_bytes`` that are really there (zeros): ~2 MB on disk for 2 GiB."""
    name = "././@PaxHeader" if kind == tarfile.XHDTYPE else "././@LongLink"
    path.write_bytes(gzip.compress(tar_header(name, declared_bytes, kind)) + _zeros_gzip(declared_bytes + 1024))
    return path


# Zip -------------------------------------------------------------------------------------------------


def zip_with_directory(path: Path, entries: int, declared_entries: int | None = None) -> Path:
    """A zip of one stored member whose central directory lists it ``entries`` times (47 bytes each:
    300,000 entries are 14 MB); the end record declares ``declared_entries`` (default: the truth),
    through a zip64 record when it does not fit 16 bits."""
    content = b"<a/>"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(content), 4, 4, 1, 0) + b"a" + content
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, zlib.crc32(content), 4, 4, 1, 0, 0, 0, 0, 0, 0
    )
    directory = (central + b"a") * entries
    declared = entries if declared_entries is None else declared_entries
    start, size = len(local), len(directory)
    tail = b""
    if declared > 0xFFFF:
        eocd64_at = start + size
        tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, declared, declared, size, start)
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_at, 1)
        tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        tail = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, declared, declared, size, start, 0)
    path.write_bytes(local + directory + tail)
    return path


# PDF -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    name: str
    stored: bytes  # the stream's bytes as written (FlateDecode when ``deflated``)
    declared_bytes: int | None = None  # /Params /Size
    deflated: bool = True


def deflated_zeros(size_bytes: int) -> bytes:
    """``size_bytes`` of zeros, deflated (70 MB are 70 KB)."""
    compressor = zlib.compressobj(9)
    chunk = bytes(MIB)
    parts = [compressor.compress(chunk) for _ in range(size_bytes // MIB)]
    parts.append(compressor.compress(bytes(size_bytes % MIB)))
    parts.append(compressor.flush())
    return b"".join(parts)


def pdf_with_attachments(attachments: list[Attachment]) -> bytes:
    """A one-catalog PDF whose EmbeddedFiles name tree lists ``attachments`` (classic xref table)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the name tree's number is known
    pages = add(b"<< /Type /Pages /Kids [] /Count 0 >>")
    pairs = []
    for attachment in attachments:
        params = b"" if attachment.declared_bytes is None else b" /Params << /Size %d >>" % attachment.declared_bytes
        flate = b" /Filter /FlateDecode" if attachment.deflated else b""
        stream = add(
            b"<< /Type /EmbeddedFile /Length %d%s%s >>\nstream\n" % (len(attachment.stored), flate, params)
            + attachment.stored
            + b"\nendstream"
        )
        name = attachment.name.encode("latin-1")
        spec = add(b"<< /Type /Filespec /F (%s) /UF (%s) /EF << /F %d 0 R >> >>" % (name, name, stream))
        pairs.append(b"(%s) %d 0 R" % (name, spec))
    tree = add(b"<< /Names [" + b" ".join(pairs) + b"] >>")
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R /Names << /EmbeddedFiles %d 0 R >> >>" % (pages, tree)
    out = [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"]
    offsets = []
    position = len(out[0])
    for number, body in enumerate(objects, start=1):
        chunk = b"%d 0 obj\n" % number + body + b"\nendobj\n"
        offsets.append(position)
        out.append(chunk)
        position += len(chunk)
    xref = [b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)]
    xref += [b"%010d 00000 n \n" % offset for offset in offsets]
    trailer = b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, position)
    return b"".join(out + xref + [trailer])


_TWO_OBJECTS = (
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
)


def pdf_with_xref_entries(entries: int) -> bytes:
    """A two-object PDF whose classic cross-reference table declares ``entries`` entries (20 bytes each)."""
    head = _TWO_OBJECTS
    first = head.index(b"1 0 obj")
    rows = b"0000000000 65535 f \n" + (b"%010d 00000 n \n" % first) * (entries - 1)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (entries, len(head))
    return head + b"xref\n0 %d\n" % entries + rows + trailer


def pdf_with_xref_stream(decoded_bytes: int, declared_entries: int) -> bytes:
    """A PDF whose only cross-reference is a stream of ``decoded_bytes`` zeros (1-byte free entries,
    deflated) declaring ``declared_entries`` entries."""
    head = _TWO_OBJECTS
    data = deflated_zeros(decoded_bytes)
    xref = (
        b"3 0 obj\n<< /Type /XRef /Size %d /W [1 0 0] /Root 1 0 R /Length %d /Filter /FlateDecode >>\nstream\n"
        % (declared_entries, len(data))
        + data
        + b"\nendstream\nendobj\n"
    )
    return head + xref + b"startxref\n%d\n%%%%EOF\n" % len(head)


def damaged_pdf_with_object_streams(count: int, decoded_bytes: int) -> bytes:
    """A PDF whose ``startxref`` points nowhere, so that pypdf repairs it by inflating every object
    stream it finds: ``count`` of them, each ``decoded_bytes`` of zeros (8 MiB deflate to 8 KB)."""
    data = deflated_zeros(decoded_bytes)
    streams = b"".join(
        b"%d 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Length %d /Filter /FlateDecode >>\nstream\n" % (number, len(data))
        + data
        + b"\nendstream\nendobj\n"
        for number in range(3, 3 + count)
    )
    return _TWO_OBJECTS + streams + b"trailer\n<< /Root 1 0 R /Size %d >>\nstartxref\n12345\n%%%%EOF\n" % (count + 3)
