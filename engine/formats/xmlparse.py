"""The one place an lxml parser is built: every untrusted XML byte string is parsed here.

Invariants:

* DTD loading, DTD validation, entity resolution and network access are off; ``huge_tree`` is off so
  libxml2 keeps its depth and amplification limits.
* A document carrying a DOCTYPE (and so any entity declaration) is refused with
  ``XML_FORBIDDEN_CONSTRUCT`` before parsing, by scanning the prolog, and again after parsing from
  ``docinfo`` in case the prolog scan was fooled by an unusual encoding. Nothing from a refused
  document (entity text, file contents) ever reaches a finding.
* A document that is not well-formed gives ``XML_NOT_WELL_FORMED`` with its line in ``location``.

Problems are raised as ``XmlError`` carrying the finding; callers turn it into report data.
"""

from __future__ import annotations

import functools
import re

from lxml import etree

from engine.catalogue import finding
from engine.model import Finding

# The prolog (declaration, comments, processing instructions, DOCTYPE) sits before the root element;
# 64 KiB is far more than any real prolog and bounds the scan.
_PROLOG_SCAN_BYTES = 64 * 1024
_FORBIDDEN = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_MAX_MESSAGE_CHARS = 300


class XmlError(Exception):
    """The bytes are not an acceptable XML document; ``finding`` says why."""

    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


@functools.cache
def safe_parser() -> etree.XMLParser:
    """The hardened parser (one per process; lxml parsers are reusable within a thread)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def declares_doctype(data: bytes) -> bool:
    """True when the prolog holds ``<!DOCTYPE`` or ``<!ENTITY`` (UTF-8/Latin family or UTF-16)."""
    head = data[:_PROLOG_SCAN_BYTES]
    if head.startswith(_UTF16_BOMS):
        head = head.decode("utf-16", errors="ignore").encode("utf-8", errors="ignore")
    elif len(head) > 1 and (head[0] == 0 or head[1] == 0):  # UTF-16 without a BOM
        codec = "utf-16-be" if head[0] == 0 else "utf-16-le"
        head = head.decode(codec, errors="ignore").encode("utf-8", errors="ignore")
    return _FORBIDDEN.search(head) is not None


def parse(data: bytes, document: str) -> etree._ElementTree:
    """Parse untrusted bytes safely; raise ``XmlError`` with a catalogued finding on any problem."""
    if declares_doctype(data):
        raise XmlError(_forbidden(document))
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else None)
        message = (exc.msg or str(exc))[:_MAX_MESSAGE_CHARS]
        raise XmlError(
            finding(
                "XML_NOT_WELL_FORMED",
                f"The XML document is not well-formed: {message}",
                location=f"line {line}" if line else None,
                document=document,
            )
        ) from None
    except ValueError as exc:  # e.g. a str with an encoding declaration, or an empty buffer
        raise XmlError(
            finding("XML_NOT_WELL_FORMED", f"The XML document cannot be read: {exc}", document=document)
        ) from None
    tree = root.getroottree()
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XmlError(_forbidden(document))
    return tree


def _forbidden(document: str) -> Finding:
    return finding("XML_FORBIDDEN_CONSTRUCT", document=document)
