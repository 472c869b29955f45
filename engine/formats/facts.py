"""Read ``InvoiceFacts`` (the fields the business checks and the report need) from a parsed invoice.

UBL 2.1 Invoice/CreditNote and CII D16B are read with fixed XPath expressions. Invariant: this module
never raises on odd input; a field that is absent, empty or not a number is ``None``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from lxml import etree

from engine.model import DocumentFamily, InvoiceFacts

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
_SIRET = re.compile(r"^\d{14}$")
_SIRET_SCHEME = "0009"

# CII paths, relative to the root element.
_CII_AGREEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
_CII_SETTLEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
_CII_TOTALS = f"{_CII_SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"


def guideline_of(root: etree._Element, family: DocumentFamily) -> str | None:
    """BT-24, the specification identifier (UBL ``CustomizationID``, CII guideline parameter ID)."""
    if family is DocumentFamily.UBL:
        return _text(root, "cbc:CustomizationID")
    return _text(root, "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID")


def has_attachment(root: etree._Element, family: DocumentFamily) -> bool:
    """True when the invoice embeds a binary document (BG-24 with an attached object)."""
    if family is DocumentFamily.UBL:
        path = "cac:AdditionalDocumentReference/cac:Attachment/cbc:EmbeddedDocumentBinaryObject"
    else:
        path = f"{_CII_AGREEMENT}/ram:AdditionalReferencedSupportingDocument/ram:AttachmentBinaryObject"
    return _text(root, path) is not None


def read_facts(root: etree._Element, family: DocumentFamily, document: str) -> InvoiceFacts:
    """The facts of one invoice; never raises."""
    try:
        if family is DocumentFamily.UBL:
            return _ubl_facts(root, document)
        return _cii_facts(root, document)
    except (etree.Error, ValueError, TypeError):  # a malformed tree: report what we can, i.e. nothing
        return empty_facts(document)


def empty_facts(document: str) -> InvoiceFacts:
    return InvoiceFacts(document, None, None, None, None, None, None, None, None, None, None, None, None, None)


def _ubl_facts(root: etree._Element, document: str) -> InvoiceFacts:
    supplier = "cac:AccountingSupplierParty/cac:Party"
    buyer = "cac:AccountingCustomerParty/cac:Party"
    type_code = _text(root, "cbc:InvoiceTypeCode") or _text(root, "cbc:CreditNoteTypeCode")
    return InvoiceFacts(
        document=document,
        number=_text(root, "cbc:ID"),
        type_code=type_code,
        issue_date=_text(root, "cbc:IssueDate"),
        currency=_text(root, "cbc:DocumentCurrencyCode"),
        supplier_id=_ubl_party_id(root, supplier),
        supplier_name=_text(root, f"{supplier}/cac:PartyLegalEntity/cbc:RegistrationName")
        or _text(root, f"{supplier}/cac:PartyName/cbc:Name"),
        buyer_id=_ubl_party_id(root, buyer),
        buyer_name=_text(root, f"{buyer}/cac:PartyLegalEntity/cbc:RegistrationName")
        or _text(root, f"{buyer}/cac:PartyName/cbc:Name"),
        service_code=_text(root, "cbc:BuyerReference"),
        engagement_number=_text(root, "cac:OrderReference/cbc:ID"),
        total_without_vat=_amount(root, "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount"),
        total_with_vat=_amount(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount"),
        amount_due=_amount(root, "cac:LegalMonetaryTotal/cbc:PayableAmount"),
        guideline=guideline_of(root, DocumentFamily.UBL),
        has_attachment=has_attachment(root, DocumentFamily.UBL),
    )


def _ubl_party_id(root: etree._Element, party: str) -> str | None:
    """Prefer a SIRET (scheme 0009 or 14 digits) among legal and party identifiers, else the first id."""
    candidates = _nodes(root, f"{party}/cac:PartyLegalEntity/cbc:CompanyID") + _nodes(
        root, f"{party}/cac:PartyIdentification/cbc:ID"
    )
    first = next((t for n in candidates if (t := _node_text(n))), None)
    return _prefer_siret(candidates) or first or _text(root, f"{party}/cbc:EndpointID")


def _cii_facts(root: etree._Element, document: str) -> InvoiceFacts:
    seller = f"{_CII_AGREEMENT}/ram:SellerTradeParty"
    buyer = f"{_CII_AGREEMENT}/ram:BuyerTradeParty"
    return InvoiceFacts(
        document=document,
        number=_text(root, "rsm:ExchangedDocument/ram:ID"),
        type_code=_text(root, "rsm:ExchangedDocument/ram:TypeCode"),
        issue_date=_cii_date(_text(root, "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString")),
        currency=_text(root, f"{_CII_SETTLEMENT}/ram:InvoiceCurrencyCode"),
        supplier_id=_cii_party_id(root, seller),
        supplier_name=_text(root, f"{seller}/ram:Name"),
        buyer_id=_cii_party_id(root, buyer),
        buyer_name=_text(root, f"{buyer}/ram:Name"),
        service_code=_text(root, f"{_CII_AGREEMENT}/ram:BuyerReference"),
        engagement_number=_text(root, f"{_CII_AGREEMENT}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"),
        total_without_vat=_amount(root, f"{_CII_TOTALS}/ram:TaxBasisTotalAmount"),
        total_with_vat=_amount(root, f"{_CII_TOTALS}/ram:GrandTotalAmount"),
        amount_due=_amount(root, f"{_CII_TOTALS}/ram:DuePayableAmount"),
        guideline=guideline_of(root, DocumentFamily.CII),
        has_attachment=has_attachment(root, DocumentFamily.CII),
    )


def _cii_party_id(root: etree._Element, party: str) -> str | None:
    candidates = (
        _nodes(root, f"{party}/ram:SpecifiedLegalOrganization/ram:ID")
        + _nodes(root, f"{party}/ram:GlobalID")
        + _nodes(root, f"{party}/ram:ID")
    )
    return _prefer_siret(candidates) or next((t for n in candidates if (t := _node_text(n))), None)


def _prefer_siret(nodes: list[etree._Element]) -> str | None:
    for node in nodes:
        text = _node_text(node)
        if text and (node.get("schemeID") == _SIRET_SCHEME or _SIRET.match(text.replace(" ", ""))):
            return text.replace(" ", "")
    return None


def _cii_date(text: str | None) -> str | None:
    """CII format 102 ``yyyymmdd`` → ISO ``yyyy-mm-dd``; anything else is returned as found."""
    if text and len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _nodes(root: etree._Element, path: str) -> list[etree._Element]:
    found = root.xpath(path, namespaces=NS)
    return [n for n in found if isinstance(n, etree._Element)] if isinstance(found, list) else []


def _node_text(node: etree._Element) -> str | None:
    text = (node.text or "").strip()
    return text or None


def _text(root: etree._Element, path: str) -> str | None:
    for node in _nodes(root, path):
        if (text := _node_text(node)) is not None:
            return text
    return None


def _amount(root: etree._Element, path: str) -> Decimal | None:
    text = _text(root, path)
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
