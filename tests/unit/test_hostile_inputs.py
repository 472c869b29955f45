"""Hostile flows end with their specific code, quickly and in bounded memory (DESIGN §9 rule 6)."""

from __future__ import annotations

import io
import resource
import tarfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.model import Limits, Syntax
from engine.technical import TransportResult, content_check, transport_check
from tests.corpus import CORPUS

UBL = CORPUS / "ubl" / "cen__ubl-tc434-example1.xml"
FACTURX_PDF = CORPUS / "pdf" / "mustang__EN16931_Einfach.pdf"
MAX_WALL_S = 5.0
MAX_PYTHON_BYTES = 200 * 1024 * 1024


def _bounded(run: Callable[[], TransportResult]) -> TransportResult:
    """Run a check and assert it was fast and did not allocate much (Python heap and process RSS)."""
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = run()
    finally:
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed_s = time.monotonic() - started
    rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib
    assert elapsed_s < MAX_WALL_S, f"took {elapsed_s:.1f} s"
    assert peak_bytes < MAX_PYTHON_BYTES, f"peak Python allocation {peak_bytes} bytes"
    assert rss_growth_kib * 1024 < MAX_PYTHON_BYTES, f"max RSS grew by {rss_growth_kib} KiB"
    return result


def _codes(result: TransportResult) -> set[str]:
    return {f.code for f in result.findings}


def _check(path: Path, declared: Syntax | None = None) -> TransportResult:
    """The check from the file (a big flow's blob) and from its bytes (a small flow kept in the store):
    both bounded, both with the same result."""
    from_file = _bounded(lambda: transport_check(str(path), path.name, declared, Limits()))
    from_bytes = _bounded(lambda: transport_check(path.read_bytes(), path.name, declared, Limits()))
    assert from_bytes == from_file
    return from_file


def test_zip_bomb_is_refused_by_ratio(tmp_path: Path) -> None:
    """1 GB of zeros deflated to ~1 MB is refused as a compression-ratio bomb without inflating it."""
    bomb = tmp_path / "bomb.zip"
    chunk = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("invoice.xml", "w", force_zip64=True) as member,
    ):
        for _ in range(1024):
            member.write(chunk)
    assert _codes(_check(bomb)) == {"ARCHIVE_COMPRESSION_RATIO"}


def test_zip_bomb_with_lying_header_is_caught_while_reading(tmp_path: Path) -> None:
    """A member whose declared size is small but which inflates hugely is stopped while being read."""
    bomb = tmp_path / "liar.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("invoice.xml", b"\0" * (200 * 1024 * 1024))
    raw = bytearray(bomb.read_bytes())
    # Patch the declared uncompressed size (local header offset 22, central directory entry offset 24).
    raw[22:26] = (1000).to_bytes(4, "little")
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    bomb.write_bytes(bytes(raw))
    assert _codes(_check(bomb)) & {"ARCHIVE_COMPRESSION_RATIO", "ARCHIVE_UNREADABLE"}


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    """Nested entity declarations are refused as a forbidden construct, never expanded."""
    levels = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    document = f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{"".join(levels)}]>\n<Invoice>&lol9;</Invoice>'
    path = tmp_path / "laughs.xml"
    path.write_text(document)
    assert _codes(_check(path)) == {"XML_FORBIDDEN_CONSTRUCT"}


def test_xxe_to_a_local_file_never_leaks(tmp_path: Path) -> None:
    """An external entity pointing at a local file is refused and its content appears nowhere."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-4711")
    for target in (secret.as_uri(), "file:///etc/passwd"):
        path = tmp_path / "xxe.xml"
        path.write_text(
            f'<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{target}">]>\n'
            '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&xxe;</Invoice>'
        )
        result = _check(path)
        assert _codes(result) == {"XML_FORBIDDEN_CONSTRUCT"}
        content = content_check(str(path), path.name, Syntax.UBL_INVOICE, Limits())
        text = repr(result) + repr(content)
        assert "TOP-SECRET" not in text
        assert "root:" not in text


def test_empty_file(tmp_path: Path) -> None:
    """A 0-byte flow is FILE_EMPTY."""
    path = tmp_path / "empty.xml"
    path.write_bytes(b"")
    assert _codes(_check(path)) == {"FILE_EMPTY"}


def test_truncated_pdf(tmp_path: Path) -> None:
    """A Factur-X PDF cut in half ends as PDF_UNREADABLE or PDF_NO_XML, quickly."""
    data = FACTURX_PDF.read_bytes()
    path = tmp_path / "half.pdf"
    path.write_bytes(data[: len(data) // 2])
    assert _codes(_check(path)) <= {"PDF_UNREADABLE", "PDF_NO_XML"}
    assert _codes(_check(path))


def test_ten_thousand_members_refused_before_extraction(tmp_path: Path) -> None:
    """A 10,000-member zip and tar.gz are refused from their headers, in well under the time bound."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(10_000):
            archive.writestr(f"inv{i}.xml", b"<a/>")
    assert _codes(_check(path)) == {"ARCHIVE_TOO_MANY_DOCUMENTS"}
    tgz = tmp_path / "many.tar.gz"
    with tarfile.open(tgz, "w:gz") as archive:
        for i in range(10_000):
            info = tarfile.TarInfo(f"inv{i}.xml")
            info.size = 4
            archive.addfile(info, io.BytesIO(b"<a/>"))
    assert _codes(_check(tgz)) == {"ARCHIVE_TOO_MANY_DOCUMENTS"}


@pytest.mark.parametrize("member", ["../evil.xml", "/etc/evil.xml", "a/../../evil.xml", "C:/evil.xml"])
def test_unsafe_member_paths(tmp_path: Path, member: str) -> None:
    """Traversal and absolute member paths refuse the archive (zip and tar)."""
    path = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.xml", UBL.read_bytes())
        archive.writestr(zipfile.ZipInfo(member), UBL.read_bytes())
    assert _codes(_check(path)) == {"ARCHIVE_UNSAFE_PATH"}
    tar = tmp_path / "unsafe.tar"
    with tarfile.open(tar, "w") as archive:
        info = tarfile.TarInfo(member)
        info.size = UBL.stat().st_size
        archive.addfile(info, io.BytesIO(UBL.read_bytes()))
    assert _codes(_check(tar)) == {"ARCHIVE_UNSAFE_PATH"}


def test_symlink_and_hardlink_members_in_tar(tmp_path: Path) -> None:
    """Link members in a tar are unsafe, whatever they point at."""
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        path = tmp_path / "link.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo("invoice.xml")
            info.type = kind
            info.linkname = "/etc/passwd"
            archive.addfile(info)
        assert _codes(_check(path)) == {"ARCHIVE_UNSAFE_PATH"}


def test_nested_archive_is_not_unpacked(tmp_path: Path) -> None:
    """An archive inside an archive is a document of unknown syntax; it is never unpacked."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("invoice.xml", UBL.read_bytes())
    path = tmp_path / "nested.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inner.zip", inner.getvalue())
    result = _check(path)
    assert _codes(result) == {"SYNTAX_UNKNOWN"}
    assert "nested" in result.findings[0].message


def test_unreadable_and_empty_archives(tmp_path: Path) -> None:
    """A damaged zip is ARCHIVE_UNREADABLE; an archive of only directories and macOS junk is empty."""
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert _codes(_check(damaged)) == {"ARCHIVE_UNREADABLE"}
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("folder/", b"")
        archive.writestr("__MACOSX/._invoice.xml", b"junk")
    assert _codes(_check(empty)) == {"ARCHIVE_EMPTY"}


def test_mixed_archive_and_declared_mismatch(tmp_path: Path) -> None:
    """UBL and CII in one archive is SYNTAX_MIXED; UBL declared as CII is SYNTAX_MISMATCH."""
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.xml", UBL.read_bytes())
        archive.writestr("b.xml", (CORPUS / "cii" / "cen__CII_example1.xml").read_bytes())
    assert "SYNTAX_MIXED" in _codes(_check(path))
    assert _codes(_check(UBL, Syntax.CII_16B)) == {"SYNTAX_MISMATCH"}
    assert _codes(_check(UBL, Syntax.UBL_INVOICE_MIN)) == {"ATTACHMENT_MISSING"}


def test_not_well_formed_reports_the_line(tmp_path: Path) -> None:
    """A broken XML names the line of the problem."""
    path = tmp_path / "broken.xml"
    path.write_text("<?xml version='1.0'?>\n<Invoice>\n  <ID>1</Id>\n</Invoice>\n")
    result = _check(path)
    assert _codes(result) == {"XML_NOT_WELL_FORMED"}
    assert result.findings[0].location == "line 3"
