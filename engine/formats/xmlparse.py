"""The one place an lxml parser is built: every untrusted XML byte string is parsed here.

Invariants:

* DTD loading, DTD validation, entity resolution and network access are off; ``huge_tree`` is off so
  libxml2 keeps its depth and amplification limits.
* A document carrying a DOCTYPE (and so any entity declaration) is refused with
  ``XML_FORBIDDEN_CONSTRUCT`` before parsing, by scanning the prolog, and again after parsing from
  ``docinfo`` in case the prolog scan was fooled by an unusual encoding. Nothing from a refused
  document (entity text, file contents) ever reaches a finding.
* A document that is not well-formed gives ``XML_NOT_WELL_FORMED`` with its line in ``location``.
* Size budget, before parsing: more than ``max_bytes`` gives ``XML_TOO_LARGE``, and so does an upper
  bound of its elements (its tags: ``<`` not followed by ``/``, counted at C speed) over
  ``max_elements`` (a tree costs ~120 bytes per element, so 28 MB of ``<a/>`` would be 830 MB).
* Depth: libxml2 stops at 256 levels while parsing (``huge_tree`` off), which gives ``XML_TOO_DEEP``;
  ``max_depth`` (at most 256) is checked right after, by one XPath evaluated in C.

Problems are raised as ``XmlError`` carrying the finding; callers turn it into report data.
"""

from __future__ import annotations

import functools
import re

from lxml import etree

from engine.catalogue import finding
from engine.model import Finding, Limits

# The prolog (declaration, comments, processing instructions, DOCTYPE) sits before the root element;
# 64 KiB is far more than any real prolog and bounds the scan.
_PROLOG_SCAN_BYTES = 64 * 1024
_FORBIDDEN = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_MAX_MESSAGE_CHARS = 300
LIBXML2_MAX_DEPTH = 256  # libxml2's own nesting limit without XML_PARSE_HUGE


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


def looks_like_xml(data: bytes) -> bool:
    """Whether ``data`` starts as XML does: ``<`` after an optional UTF-8 byte order mark and blanks.
    UTF-16 and UTF-32 text (a NUL among the first bytes, or their byte order marks) is left to the parser."""
    head = data[:4]
    if b"\0" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    return data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1] == b"<"


def element_bound(data: bytes) -> int:
    """An upper bound of the elements of an XML document: its ``<`` not followed by ``/`` (comments,
    processing instructions and CDATA sections count too; ``<`` is escaped anywhere else)."""
    return data.count(b"<") - data.count(b"</") - data.count(b"<\0/")


def parse(
    data: bytes,
    document: str,
    *,
    max_bytes: int = Limits.max_xml_bytes,
    max_depth: int = Limits.max_xml_depth,
    max_elements: int = Limits.max_xml_elements,
) -> etree._ElementTree:
    """Parse untrusted bytes safely; raise ``XmlError`` with a catalogued finding on any problem."""
    if len(data) > max_bytes:
        raise XmlError(finding("XML_TOO_LARGE", f"The XML document exceeds {max_bytes} bytes.", document=document))
    if element_bound(data) > max_elements:
        raise XmlError(
            finding(
                "XML_TOO_LARGE",
                f"The XML document has more than {max_elements} elements (what is left of max_xml_elements).",
                document=document,
            )
        )
    if not looks_like_xml(data):
        raise XmlError(
            finding("FILE_NOT_XML", "Not an invoice (not XML): the file does not start with '<'.", document=document)
        )
    if declares_doctype(data):
        raise XmlError(_forbidden(document))
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        if exc.code == etree.ErrorTypes.ERR_NO_MEMORY:  # libxml2's malloc failed: the process, not the file
            raise MemoryError(f"{document}: the XML parser ran out of memory") from exc
        raise XmlError(_syntax_error(exc, document)) from None
    except ValueError as exc:  # e.g. a str with an encoding declaration, or an empty buffer
        raise XmlError(
            finding("XML_NOT_WELL_FORMED", f"The XML document cannot be read: {exc}", document=document)
        ) from None
    tree = root.getroottree()
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XmlError(_forbidden(document))
    if max_depth < LIBXML2_MAX_DEPTH and _deeper_than(max_depth)(tree):
        raise XmlError(_too_deep(document, max_depth))
    return tree


@functools.cache
def _deeper_than(max_depth: int) -> etree.XPath:
    """True when an element sits ``max_depth + 1`` levels down (the root element is level 1)."""
    return etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")


def _syntax_error(exc: etree.XMLSyntaxError, document: str) -> Finding:
    message = (exc.msg or str(exc))[:_MAX_MESSAGE_CHARS]
    if exc.code == etree.ErrorTypes.ERR_RESOURCE_LIMIT:  # libxml2's own limits, hit while parsing
        if "depth" in message.lower():
            return _too_deep(document, LIBXML2_MAX_DEPTH)
        return finding("XML_TOO_LARGE", f"The XML document exceeds a parser limit: {message}", document=document)
    line = exc.lineno or (exc.position[0] if exc.position else None)
    return finding(
        "XML_NOT_WELL_FORMED",
        f"The XML document is not well-formed: {message}",
        location=f"line {line}" if line else None,
        document=document,
    )


def _too_deep(document: str, max_depth: int) -> Finding:
    return finding("XML_TOO_DEEP", f"The XML elements nest deeper than {max_depth} levels.", document=document)


def _forbidden(document: str) -> Finding:
    return finding("XML_FORBIDDEN_CONSTRUCT", document=document)
