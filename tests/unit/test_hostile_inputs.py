"""Hostile flows end with their specific code, quickly and in bounded memory (DESIGN §9 rule 6)."""

from __future__ import annotations

import io
import resource
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.formats import pdf
from engine.model import Limits, Syntax
from engine.technical import TransportResult, content_check, transport_check
from tests.corpus import CORPUS
from tests.hostile import (
    MIB,
    Attachment,
    damaged_pdf_with_object_streams,
    deflated_zeros,
    huge_extended_header,
    measure,
    pax_header,
    pdf_with_attachments,
    pdf_with_xref_entries,
    pdf_with_xref_stream,
    tar_header,
    tar_member,
    zip_with_directory,
)

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


# Resource budget (engine.model.Limits): each input below declares or expands to far more than it weighs,
# and is refused with its own code before those bytes exist in memory. The big ones run in a child
# process (tests.hostile.measure), whose peak RSS growth past its imports is the measure.


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax", "gnu-long-name"])
def test_extended_tar_header_declaring_2_gib_is_refused_unread(tmp_path: Path, kind: bytes) -> None:
    """A 2 MB tar.gz whose first entry is a pax (or GNU long-name) header of 2 GiB of real zeros is
    ARCHIVE_HEADER_TOO_LARGE from the declared size alone: under 16 MB of RSS and 1 s, from the file and
    from its bytes (before: tarfile read the 2 GiB header whole, 2.29 GB)."""
    path = huge_extended_header(tmp_path / "pax.tar.gz", kind)
    assert path.stat().st_size < 3 * MIB
    for mode in ("check", "check-bytes"):
        measured = measure(mode, path)
        assert measured.outcome == ["ARCHIVE_HEADER_TOO_LARGE"], mode
        assert measured.growth_bytes < 16 * MIB, (mode, measured)
        assert measured.elapsed_s < 1.0, (mode, measured)


def test_chained_small_extended_headers_share_one_budget(tmp_path: Path) -> None:
    """Two hundred 1 KB pax headers before one member add up past max_archive_header_bytes (64 KiB):
    the chain is refused like one big header; ten of them are within budget."""
    header = pax_header({"comment": "x" * 900})
    member = tar_member("invoice.xml", UBL.read_bytes())
    path = tmp_path / "chain.tar"
    path.write_bytes(header * 200 + member + bytes(1024))
    assert _codes(_check(path)) == {"ARCHIVE_HEADER_TOO_LARGE"}
    path.write_bytes(header * 10 + member + bytes(1024))
    assert _codes(_check(path)) == set()


@pytest.mark.parametrize(
    "entry",
    [
        tar_header("sparse.xml", 0, tarfile.GNUTYPE_SPARSE),
        pax_header({"GNU.sparse.realsize": "99999"}) + tar_member("sparse.xml", b""),
        tar_header("label", 0, b"V"),
    ],
    ids=["gnu-sparse", "pax-sparse", "volume-label"],
)
def test_sparse_members_and_volume_labels_are_refused(tmp_path: Path, entry: bytes) -> None:
    """GNU sparse members (their maps are never read), pax GNU.sparse.* members and volume labels
    are ARCHIVE_UNSUPPORTED_MEMBER."""
    path = tmp_path / "odd.tar"
    path.write_bytes(entry + bytes(1024))
    assert _codes(_check(path)) == {"ARCHIVE_UNSUPPORTED_MEMBER"}


@pytest.mark.parametrize("declared", [None, 1], ids=["end-record-says-300000", "end-record-says-1"])
def test_zip_central_directory_of_300000_entries(tmp_path: Path, declared: int | None) -> None:
    """A zip whose central directory lists 300,000 entries is ARCHIVE_TOO_MANY_DOCUMENTS from its
    (zip64) end record alone, or, when the record understates the count, after max_archive_members
    entries of the directory: under 16 MB of RSS and 1 s (before: zipfile parsed every entry, 424 MB)."""
    path = zip_with_directory(tmp_path / "wide.zip", 300_000, declared)
    for mode in ("check", "check-bytes"):
        measured = measure(mode, path)
        assert measured.outcome == ["ARCHIVE_TOO_MANY_DOCUMENTS"], mode
        assert measured.growth_bytes < 16 * MIB, (mode, measured)
        assert measured.elapsed_s < 1.0, (mode, measured)


def test_zip_entry_with_oversized_name_and_extra_field(tmp_path: Path) -> None:
    """A zip entry whose name and extra field take 70 KB is ARCHIVE_HEADER_TOO_LARGE."""
    path = tmp_path / "names.zip"
    info = zipfile.ZipInfo("n" * 30_000 + ".xml")
    info.extra = b"\x99\x99" + (40_000).to_bytes(2, "little") + bytes(40_000)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, UBL.read_bytes())
    assert _codes(_check(path)) == {"ARCHIVE_HEADER_TOO_LARGE"}


def _facturx_xml() -> bytes:
    return pdf.extract_xml(FACTURX_PDF.read_bytes(), FACTURX_PDF.name, Limits()).data


def test_pdf_with_30_attachments_of_70_mb_of_zeros(tmp_path: Path) -> None:
    """The attack run's PDF, 2 MB carrying 30 deflated 70 MB files of zeros, is
    PDF_TOO_MANY_ATTACHMENTS from the name tree, under 32 MB of RSS and 2 s (before: every attachment
    was inflated and kept, 2.35 GB)."""
    zeros = deflated_zeros(70 * MIB)
    path = tmp_path / "attachments.pdf"
    path.write_bytes(pdf_with_attachments([Attachment(f"annex-{i}.bin", zeros) for i in range(30)]))
    assert path.stat().st_size < 3 * MIB
    measured = measure("check", path)
    assert measured.outcome == ["PDF_TOO_MANY_ATTACHMENTS"]
    assert measured.growth_bytes < 32 * MIB, measured
    assert measured.elapsed_s < 2.0, measured


def test_pdf_attachments_other_than_the_xml_are_never_inflated(tmp_path: Path) -> None:
    """A valid Factur-X XML next to 19 deflated 70 MB files of zeros (sizes undeclared, so within every
    limit) passes the transport check without inflating them: under 48 MB of RSS (1.3 GB if it did)."""
    zeros = deflated_zeros(70 * MIB)
    annexes = [Attachment(f"annex-{i}.bin", zeros) for i in range(19)]
    path = tmp_path / "facturx.pdf"
    path.write_bytes(pdf_with_attachments([*annexes, Attachment("factur-x.xml", zlib.compress(_facturx_xml()))]))
    measured = measure("check", path)
    assert measured.outcome == []
    assert measured.growth_bytes < 48 * MIB, measured


def test_pdf_attachment_sizes_as_declared(tmp_path: Path) -> None:
    """An attachment declaring 70 MB is PDF_ATTACHMENT_TOO_LARGE (30 MiB each); three declaring 25 MB
    are PDF_ATTACHMENTS_TOO_LARGE (60 MiB together); neither is inflated to find out."""
    xml = Attachment("factur-x.xml", zlib.compress(_facturx_xml()))
    one = tmp_path / "one.pdf"
    one.write_bytes(pdf_with_attachments([xml, Attachment("scan.tif", deflated_zeros(MIB), 70 * 1000 * 1000)]))
    assert _codes(_check(one)) == {"PDF_ATTACHMENT_TOO_LARGE"}
    three = tmp_path / "three.pdf"
    annexes = [Attachment(f"scan-{i}.tif", deflated_zeros(MIB), 25 * 1000 * 1000) for i in range(3)]
    three.write_bytes(pdf_with_attachments([xml, *annexes]))
    assert _codes(_check(three)) == {"PDF_ATTACHMENTS_TOO_LARGE"}


def test_pdf_xml_attachment_inflating_to_70_mb(tmp_path: Path) -> None:
    """A factur-x.xml attachment of 70 MB of zeros (70 KB deflated) is XML_TOO_LARGE once inflating
    passes max_xml_bytes (30 MiB): its RSS stays under three times that cap."""
    path = tmp_path / "xml-bomb.pdf"
    path.write_bytes(pdf_with_attachments([Attachment("factur-x.xml", deflated_zeros(70 * MIB))]))
    measured = measure("check", path)
    assert measured.outcome == ["XML_TOO_LARGE"]
    assert measured.growth_bytes < 3 * Limits().max_xml_bytes, measured


def test_pdf_cross_reference_table_of_1_4_million_entries(tmp_path: Path) -> None:
    """A 28 MB PDF whose xref table declares 1.4 million entries is PDF_TOO_MANY_OBJECTS before pypdf
    reads them: under 1 s and 96 MB (the file's bytes twice) where pypdf alone took 6.6 s and 283 MB."""
    path = tmp_path / "xref.pdf"
    path.write_bytes(pdf_with_xref_entries(1_400_000))
    measured = measure("check", path)
    assert measured.outcome == ["PDF_TOO_MANY_OBJECTS"]
    assert measured.growth_bytes < 96 * MIB, measured
    assert measured.elapsed_s < 1.0, measured


def test_pdf_objects_and_structure_streams(tmp_path: Path) -> None:
    """More than max_pdf_objects ' obj' keywords, or a cross-reference stream declaring a million
    entries, are PDF_TOO_MANY_OBJECTS; a cross-reference stream inflating past max_pdf_stream_bytes
    is PDF_STRUCTURE_TOO_LARGE."""
    keywords = tmp_path / "keywords.pdf"
    keywords.write_bytes(pdf_with_attachments([Attachment("pad.bin", b" obj" * 100_001, deflated=False)]))
    assert _codes(_check(keywords)) == {"PDF_TOO_MANY_OBJECTS"}
    entries = tmp_path / "entries.pdf"
    entries.write_bytes(pdf_with_xref_stream(MIB, 1_000_000))
    assert _codes(_check(entries)) == {"PDF_TOO_MANY_OBJECTS"}
    inflating = tmp_path / "inflating.pdf"
    inflating.write_bytes(pdf_with_xref_stream(100 * MIB, 1000))
    assert _codes(_check(inflating)) == {"PDF_STRUCTURE_TOO_LARGE"}


def test_damaged_pdf_whose_repair_would_inflate_24_gb(tmp_path: Path) -> None:
    """A 25 MB PDF with a broken startxref and 3,000 object streams of 8 MiB of zeros each: pypdf's
    repair inflates every object stream it finds, but their names are counted first and each is capped
    at its share of max_pdf_stream_bytes, so it is PDF_STRUCTURE_TOO_LARGE in under 1 s, with little
    more than the file's bytes in memory (before: 62 s of CPU inflating 24 GB, past the 60 s timeout)."""
    path = tmp_path / "repair.pdf"
    path.write_bytes(damaged_pdf_with_object_streams(3000, 8 * MIB))
    measured = measure("check", path)
    assert measured.outcome == ["PDF_STRUCTURE_TOO_LARGE"]
    assert measured.elapsed_s < 1.0, measured
    assert measured.growth_bytes < 64 * MIB, measured


@pytest.mark.parametrize(("depth", "code"), [(100_000, "XML_TOO_DEEP"), (65, "XML_TOO_DEEP"), (64, "SYNTAX_UNKNOWN")])
def test_xml_depth(tmp_path: Path, depth: int, code: str) -> None:
    """Elements nested 100,000 deep (libxml2 stops at 256) or 65 deep (max_xml_depth 64) are
    XML_TOO_DEEP; 64 deep is parsed (and refused for its unknown root)."""
    path = tmp_path / "deep.xml"
    path.write_bytes(b"<a>" * depth + b"</a>" * depth)
    assert _codes(_check(path)) == {code}


def test_xml_of_7_million_empty_elements(tmp_path: Path) -> None:
    """28 MB of <a/> (830 MB as an lxml tree) is XML_TOO_LARGE from its tag count, before parsing:
    the child grows by little more than the file's bytes."""
    path = tmp_path / "wide.xml"
    path.write_bytes(b"<r>" + b"<a/>" * 7_000_000 + b"</r>")
    measured = measure("check", path)
    assert measured.outcome == ["XML_TOO_LARGE"]
    assert measured.growth_bytes < 64 * MIB, measured


def test_xml_element_budget_is_shared_by_the_flow(tmp_path: Path) -> None:
    """max_xml_elements counts the elements of all the flow's documents together: with room for two
    invoices, the third of an archive is XML_TOO_LARGE; max_xml_bytes refuses a document by its size."""
    body = UBL.read_bytes()
    path = tmp_path / "three.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(3):
            archive.writestr(f"inv{i}.xml", body)
    tags = body.count(b"<") - body.count(b"</")
    result = transport_check(str(path), path.name, None, Limits(max_xml_elements=2 * tags + 1))
    assert [(f.code, f.document) for f in result.findings] == [("XML_TOO_LARGE", "inv2.xml")]
    small = transport_check(str(UBL), UBL.name, None, Limits(max_xml_bytes=1000))
    assert _codes(small) == {"XML_TOO_LARGE"}
