"""Detect what a document is from its content: UBL, CII or a Factur-X PDF, and its Factur-X profile.

Invariants:

* Detection reads the bytes (magic number, then the XML root element), never the file name.
* Recognised-but-refused syntaxes (ZUGFeRD 1.0, FatturaPA, Order-X, nested archives) give
  ``SYNTAX_UNSUPPORTED`` or ``SYNTAX_UNKNOWN`` with a message naming what was found; any other root gives
  ``SYNTAX_UNKNOWN`` naming the root element.
* A PDF is a Factur-X document only when its embedded XML is a CII invoice.
* Every XML byte goes through ``engine.formats.xmlparse`` (DTDs, entities and network off).

Problems are raised as ``DocumentError`` carrying the catalogued finding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lxml import etree

from engine.catalogue import finding
from engine.formats import archive, facts, pdf, xmlparse
from engine.model import DocumentFamily, Finding, Limits, Syntax

UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
EN16931_GUIDELINE = "urn:cen.eu:en16931:2017"

_UBL_ROOTS = {(UBL_INVOICE_NS, "Invoice"), (UBL_CREDIT_NOTE_NS, "CreditNote")}
# Local root names we recognise and refuse, with what they are.
_UNSUPPORTED_ROOTS = {
    "CrossIndustryDocument": "a ZUGFeRD 1.0 CrossIndustryDocument (pre-EN 16931)",
    "FatturaElettronica": "an Italian FatturaPA invoice",
    "SCRDMCCBDACIOMessageStructure": "an Order-X purchase order (not an invoice)",
}
_PDF_MAGIC_SCAN_BYTES = 1024

DETECTED_SYNTAX = {
    DocumentFamily.UBL: Syntax.UBL_INVOICE,
    DocumentFamily.CII: Syntax.CII_16B,
    DocumentFamily.FACTURX_PDF: Syntax.CII_FACTURX,
}


class Profile(enum.Enum):
    """Factur-X / ZUGFeRD 2 profiles, read from the guideline (BT-24)."""

    MINIMUM = "MINIMUM"
    BASIC_WL = "BASICWL"
    BASIC = "BASIC"
    EN16931 = "EN16931"
    EXTENDED = "EXTENDED"


NOT_ACCEPTED_PROFILES = frozenset({Profile.MINIMUM, Profile.BASIC_WL})


class DocumentError(Exception):
    """The document is not an acceptable invoice; ``finding`` says why."""

    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


@dataclass(frozen=True)
class Detected:
    """One document, parsed and classified."""

    name: str
    family: DocumentFamily
    tree: etree._ElementTree
    xml: bytes  # the invoice XML (for a PDF, the embedded attachment)
    guideline: str | None
    profile: Profile | None  # None for UBL and for plain (non Factur-X) CII

    @property
    def root(self) -> etree._Element:
        return self.tree.getroot()


def profile_of(guideline: str | None, in_pdf: bool) -> Profile | None:
    """The Factur-X profile a guideline names, or None for a plain CII invoice.

    A PDF whose guideline is the bare EN 16931 id (or absent) is a Factur-X EN16931 invoice; a PDF
    carrying another specification (e.g. XRechnung) is judged as the plain CII invoice it is.
    """
    text = (guideline or "").strip().lower()
    if "factur-x.eu" in text or "zugferd.de" in text:
        for marker, profile in (
            (":minimum", Profile.MINIMUM),
            (":basicwl", Profile.BASIC_WL),
            (":extended", Profile.EXTENDED),
            (":basic", Profile.BASIC),
        ):
            if marker in text:
                return profile
        return Profile.EN16931
    if in_pdf and text in {"", EN16931_GUIDELINE}:
        return Profile.EN16931
    return None


def detect(data: bytes, name: str, limits: Limits) -> Detected:
    """Parse and classify one document, within ``limits`` (XML size, depth and elements, PDF budget);
    raise ``DocumentError`` when it is not an accepted invoice."""
    try:
        if b"%PDF-" in data[:_PDF_MAGIC_SCAN_BYTES]:
            return _detect_pdf(data, name, limits)
        if archive.archive_kind(data[:512]) is not None:
            raise DocumentError(
                finding(
                    "SYNTAX_UNKNOWN",
                    "The document is an archive; nested archives are not unpacked.",
                    document=name,
                )
            )
        tree = _parse(data, name, limits)
    except (xmlparse.XmlError, pdf.PdfError) as exc:
        raise DocumentError(exc.finding) from None
    family = _xml_family(tree.getroot(), name, in_pdf=False)
    guideline = facts.guideline_of(tree.getroot(), family)
    profile = profile_of(guideline, in_pdf=False) if family is DocumentFamily.CII else None
    return Detected(name, family, tree, data, guideline, profile)


def _parse(data: bytes, name: str, limits: Limits) -> etree._ElementTree:
    return xmlparse.parse(
        data,
        name,
        max_bytes=limits.max_xml_bytes,
        max_depth=limits.max_xml_depth,
        max_elements=limits.max_xml_elements,
    )


def _detect_pdf(data: bytes, name: str, limits: Limits) -> Detected:
    embedded = pdf.extract_xml(data, name, limits)
    tree = _parse(embedded.data, name, limits)
    family = _xml_family(tree.getroot(), name, in_pdf=True)
    if family is not DocumentFamily.CII:
        raise DocumentError(
            finding(
                "SYNTAX_UNSUPPORTED",
                f"The PDF embeds a {_root_name(tree.getroot())} document, not a CII invoice.",
                document=name,
            )
        )
    guideline = facts.guideline_of(tree.getroot(), family)
    return Detected(name, DocumentFamily.FACTURX_PDF, tree, embedded.data, guideline, profile_of(guideline, True))


def _xml_family(root: etree._Element, name: str, in_pdf: bool) -> DocumentFamily:
    qname = etree.QName(root)
    key = (qname.namespace or "", qname.localname)
    if key in _UBL_ROOTS:
        return DocumentFamily.UBL
    if key == (CII_NS, "CrossIndustryInvoice"):
        return DocumentFamily.CII
    what = _UNSUPPORTED_ROOTS.get(qname.localname)
    where = "The PDF embeds" if in_pdf else "The document is"
    if what is not None:
        raise DocumentError(finding("SYNTAX_UNSUPPORTED", f"{where} {what}.", document=name))
    raise DocumentError(finding("SYNTAX_UNKNOWN", f"Unknown root element {_root_name(root)}.", document=name))


def _root_name(root: etree._Element) -> str:
    qname = etree.QName(root)
    return f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname
