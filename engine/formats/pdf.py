"""Extract the embedded invoice XML (Factur-X / ZUGFeRD / XRechnung attachment) from a PDF.

Uses pypdf (maintained, pure Python, non-strict mode so real-world PDFs with a damaged cross-reference
table still open). Invariants:

* A PDF pypdf cannot open, or whose attachments cannot be listed, gives ``PDF_UNREADABLE``.
* A PDF without an XML attachment gives ``PDF_NO_XML``.
* The attachment is preferred by its conventional name (``factur-x.xml`` first), else the first
  ``.xml`` attachment; its size is bounded by ``max_xml_bytes`` (a decompression bomb in an embedded
  stream is refused, not loaded).
* The XML itself is not parsed here: the caller hands the bytes to ``engine.formats.xmlparse``.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

import pypdf
from pypdf.errors import PyPdfError

from engine.catalogue import finding
from engine.model import Finding

# Conventional attachment names, most specific first (Factur-X 1.0, ZUGFeRD 2.x, ZUGFeRD 1, XRechnung).
_PREFERRED_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "order-x.xml")


class PdfError(Exception):
    """The PDF cannot give an invoice XML; ``finding`` says why."""

    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


@dataclass(frozen=True)
class EmbeddedXml:
    attachment_name: str
    data: bytes


def extract_xml(data: bytes, document: str, max_xml_bytes: int) -> EmbeddedXml:
    """Return the invoice XML attached to the PDF ``data``; raise ``PdfError`` otherwise."""
    try:
        attachments = _attachments(data)
    except RecursionError:
        raise PdfError(_unreadable(document, "RecursionError")) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # pypdf raises a wide range of errors on damaged files; all mean "cannot be read".
        raise PdfError(_unreadable(document, type(exc).__name__)) from None
    xml_names = [name for name in attachments if name.lower().endswith(".xml")]
    if not xml_names:
        raise PdfError(finding("PDF_NO_XML", document=document))
    lowered = {name.lower(): name for name in xml_names}
    chosen = next((lowered[n] for n in _PREFERRED_NAMES if n in lowered), xml_names[0])
    content = attachments[chosen]
    if len(content) > max_xml_bytes:
        raise PdfError(
            finding("PDF_UNREADABLE", f"The embedded {chosen!r} exceeds the maximum size.", document=document)
        )
    return EmbeddedXml(chosen, content)


def _attachments(data: bytes) -> dict[str, bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypdf warns on every repaired defect; the verdict is ours
        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        found: dict[str, bytes] = {}
        for name, contents in reader.attachments.items():
            if contents:
                found[str(name)] = bytes(contents[0])
        return found


def _unreadable(document: str, reason: str) -> Finding:
    return finding("PDF_UNREADABLE", f"The PDF file cannot be read ({reason}).", document=document)
