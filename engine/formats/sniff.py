"""Guess a flow's syntax from its first bytes, at the door, when the depositor did not declare one.

The flow number carries the interface number (DESIGN §5), so a syntax is needed before the flow exists.
This is a cheap, bounded look (no XML parse, at most ``HEAD_BYTES`` of one archive member); the
transport check later detects the syntax properly and rejects a flow whose content does not fit.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

from engine.model import Syntax

HEAD_BYTES = 8192
_ARCHIVE_HEADS = (b"PK\x03\x04", b"\x1f\x8b")  # zip, gzip (tar.gz): the syntax is in a member
_UBL = re.compile(rb"urn:oasis:names:specification:ubl:schema:xsd:(Invoice|CreditNote)-2")
_CII = re.compile(rb"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100")


def sniff_syntax(head: bytes, whole: bytes | None = None) -> Syntax | None:
    """The syntax the content looks like, or None when it cannot be told cheaply.

    ``head`` is the start of the file; ``whole`` (optional) lets archives be peeked into.
    """
    if head.startswith(b"%PDF"):
        return Syntax.CII_FACTURX
    if whole is not None and head.startswith(_ARCHIVE_HEADS):
        member = _first_member_head(whole)
        return sniff_syntax(member) if member else None
    if _UBL.search(head[:HEAD_BYTES]):
        return Syntax.UBL_INVOICE
    if _CII.search(head[:HEAD_BYTES]):
        return Syntax.CII_16B
    return None


def sniff_file(path: Path) -> Syntax | None:
    """``sniff_syntax`` of a stored file: reads its head, and the whole file only when it is an archive."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        if head.startswith(_ARCHIVE_HEADS):
            return sniff_syntax(head, head + fh.read())
    return sniff_syntax(head)


def _first_member_head(data: bytes) -> bytes | None:
    """The first ``HEAD_BYTES`` of the first regular member of a zip or tar.gz, or None."""
    try:
        if data.startswith(b"PK"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist()[:16]:
                    if not info.is_dir():
                        with zf.open(info) as member_fh:
                            return member_fh.read(HEAD_BYTES)
            return None
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for _ in range(16):
                member = tf.next()
                if member is None:
                    return None
                if member.isreg():
                    tar_fh = tf.extractfile(member)
                    return tar_fh.read(HEAD_BYTES) if tar_fh else None
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError, RuntimeError):
        return None
    return None
