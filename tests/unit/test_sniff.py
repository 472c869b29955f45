"""Sniffing at the door runs in the daemon's own process: it tells ordinary archives' syntax from their
first member, reads a bounded prefix, and never expands a hostile archive."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from engine.formats.sniff import HEAD_BYTES, PREFIX_BYTES, sniff_file, sniff_syntax
from engine.model import Syntax
from tests.corpus import CORPUS
from tests.hostile import MIB, huge_extended_header, measure, zip_with_directory

UBL = (CORPUS / "ubl" / "cen__ubl-tc434-example1.xml").read_bytes()
CII = (CORPUS / "cii" / "cen__CII_example1.xml").read_bytes()


def _both(path: Path) -> Syntax | None:
    """What a file deposit (sniff_file) and a bytes deposit (sniff_syntax) say; they must agree."""
    data = path.read_bytes()
    from_file = sniff_file(path)
    assert sniff_syntax(data[:HEAD_BYTES], data) == from_file
    return from_file


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_first_document_after_folders_and_macos_metadata(tmp_path: Path, compression: int) -> None:
    """A zip's syntax is its first document's, read from the local headers: folders and __MACOSX
    entries before it are skipped."""
    path = tmp_path / "flow.zip"
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("invoices/", b"")
        zf.writestr("__MACOSX/._a.xml", b"\0\5\26\7")
        zf.writestr("invoices/a.xml", CII)
        zf.writestr("invoices/b.xml", UBL)
    assert _both(path) is Syntax.CII_16B


def test_tar_gz_first_document_with_long_names(tmp_path: Path) -> None:
    """A tar.gz's syntax is its first document's, found past GNU long-name and pax headers."""
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt) as tar:
            info = tarfile.TarInfo("d\u00e9p\u00f4t/" + "x" * 150 + ".xml")
            info.size = len(UBL)
            tar.addfile(info, io.BytesIO(UBL))
        path = tmp_path / "flow.tar.gz"
        path.write_bytes(buffer.getvalue())
        assert _both(path) is Syntax.UBL_INVOICE


def test_first_document_beyond_the_prefix_is_not_looked_for(tmp_path: Path) -> None:
    """When the first document starts past PREFIX_BYTES of the file, the answer is None (the
    transport check decides), not a read of the rest."""
    path = tmp_path / "late.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("__MACOSX/._padding", bytes(PREFIX_BYTES))
        zf.writestr("a.xml", UBL)
    assert _both(path) is None


def test_hostile_archives_are_not_expanded_in_the_daemon(tmp_path: Path) -> None:
    """A tar.gz whose pax header declares 2 GiB (2 MB on disk) and a zip whose central directory
    lists 300,000 entries (14 MB) are sniffed in under 0.5 s and 8 MB of RSS, from a file and from
    bytes (before: 2.17 GB and 38 s; 424 MB)."""
    hostile = (
        huge_extended_header(tmp_path / "pax.tar.gz"),
        zip_with_directory(tmp_path / "wide.zip", 300_000),
    )
    for path in hostile:
        for mode in ("sniff-file", "sniff-bytes"):
            measured = measure(mode, path)
            assert measured.outcome == "None", (path.name, mode)
            assert measured.growth_bytes < 8 * MIB, (path.name, mode, measured)
            assert measured.elapsed_s < 0.5, (path.name, mode, measured)
