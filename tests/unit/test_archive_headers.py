"""Ordinary archives still unpack now that tar headers and zip directories are read by our own code.

The tar reader (engine.formats.headers) replaced tarfile, and the zip end record is read before zipfile:
these tests write archives with the standard library, in every format it writes, and expect exactly
the names and bytes it wrote back.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from engine.formats import archive
from engine.formats.headers import ArchiveError, check_zip_directory
from engine.model import Limits
from tests.hostile import zip_with_directory

DOCUMENTS = {
    "invoice.xml": b"<Invoice/>",
    "folder/" + "long-name-" * 20 + ".xml": b"<Invoice>long</Invoice>",
    "factures/facture-n\u00b0-\u00e9t\u00e9.xml": b"<Invoice>accents</Invoice>",
    "big.xml": b"<Invoice>" + b"x" * 70_000 + b"</Invoice>",
}


def _tar(fmt: int, mode: str = "w", documents: dict[str, bytes] = DOCUMENTS) -> bytes:
    """The documents, a directory entry and a macOS metadata file, as the standard library writes them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=fmt) as tar:
        folder = tarfile.TarInfo("folder")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in documents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        junk = tarfile.TarInfo("__MACOSX/._invoice.xml")
        junk.size = 4
        tar.addfile(junk, io.BytesIO(b"junk"))
    return buffer.getvalue()


def _unpacked(data: bytes, limits: Limits | None = None) -> dict[str, bytes]:
    kind = archive.archive_kind(data[:512])
    assert kind is not None
    return {m.name: m.data for m in archive.unpack(data, kind, limits or Limits(), len(data))}


@pytest.mark.parametrize(
    "fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT], ids=["gnu", "pax", "ustar"]
)
@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_in_every_format_and_compression(fmt: int, mode: str) -> None:
    """GNU long names, pax paths (non-ASCII too), ustar prefixes, gzip, bzip2 and xz: every document
    comes back with its name and bytes; the directory and the macOS metadata are skipped."""
    documents = DOCUMENTS
    if fmt == tarfile.USTAR_FORMAT:  # ustar splits a path into a 155-byte prefix and a 100-byte name
        documents = {k: v for k, v in DOCUMENTS.items() if len(k.rsplit("/", 1)[-1].encode()) <= 100}
    assert _unpacked(_tar(fmt, mode, documents)) == documents


def test_extended_header_budget_is_configurable() -> None:
    """A pax header is refused once it exceeds max_archive_header_bytes, whatever its content."""
    data = _tar(tarfile.PAX_FORMAT)
    with pytest.raises(ArchiveError) as refused:
        _unpacked(data, Limits(max_archive_header_bytes=512))
    assert refused.value.finding.code == "ARCHIVE_HEADER_TOO_LARGE"


def test_tar_without_end_blocks_and_truncated_tar() -> None:
    """A tar that stops after its last member (no zero blocks) is complete; one cut inside a member is
    ARCHIVE_UNREADABLE."""
    data = _tar(tarfile.GNU_FORMAT)
    end = data.index(b"__MACOSX")  # the junk entry's header: everything before it is whole members
    assert _unpacked(data[:end]) == DOCUMENTS
    with pytest.raises(ArchiveError) as refused:
        _unpacked(data[: end - 300])
    assert refused.value.finding.code == "ARCHIVE_UNREADABLE"


def test_tar_with_a_bad_checksum_is_unreadable() -> None:
    """A header whose checksum does not match is ARCHIVE_UNREADABLE (tarfile stopped there silently)."""
    data = bytearray(_tar(tarfile.GNU_FORMAT))
    data[0] ^= 0x01
    with pytest.raises(ArchiveError) as refused:
        _unpacked(bytes(data))
    assert refused.value.finding.code == "ARCHIVE_UNREADABLE"


def test_zip_with_comments_prefix_and_deflate(tmp_path: Path) -> None:
    """A zip with an archive comment, per-entry comments and bytes before it (a self-extractor) is read
    where zipfile reads it, and unpacks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.comment = b"archive comment " * 1000
        for name, data in DOCUMENTS.items():
            info = zipfile.ZipInfo(name)
            info.comment = b"per-entry comment"
            zf.writestr(info, data)
    data = b"#!/bin/sh\nexit 0\n" + buffer.getvalue()
    assert {m.name: m.data for m in archive.unpack(data, "zip", Limits(), len(data))} == DOCUMENTS
    path = tmp_path / "sfx.zip"
    path.write_bytes(data)
    assert {m.name: m.data for m in archive.unpack(str(path), "zip", Limits(), len(data))} == DOCUMENTS


def test_zip64_end_record_agrees_with_zipfile(tmp_path: Path) -> None:
    """70,000 entries need the zip64 end record: its count and directory are the ones zipfile finds."""
    path = zip_with_directory(tmp_path / "zip64.zip", 70_000)
    with open(path, "rb") as handle:
        directory = check_zip_directory(handle, Limits(max_archive_members=70_000))
    with zipfile.ZipFile(path) as zf:
        assert directory.entries == len(zf.infolist()) == 70_000
        assert directory.start == zf.start_dir
