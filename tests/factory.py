"""Build EN 16931-valid invoices (UBL 2.1, CII D16B, Factur-X PDF) with chosen parties and numbers.

Used to make the demo invoices (``python -m tests.factory config/demo/invoices``), test inputs and
benchmark loads. Every document it builds passes the XSD and the CEN rules (tests prove it), so a test
that changes one field (a SIRET, a service code) isolates the Chorus Pro check it targets.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from engine.model import Channel, Syntax
from engine.store.port import NewFlow


@dataclass(frozen=True)
class Party:
    siret: str
    name: str
    vat: str | None = None  # FR VAT id; derived from the SIREN when None

    @property
    def siren(self) -> str:
        return self.siret[:9]

    @property
    def vat_id(self) -> str:
        if self.vat:
            return self.vat
        key = (12 + 3 * (int(self.siren) % 97)) % 97
        return f"FR{key:02d}{self.siren}"


@dataclass(frozen=True)
class InvoiceSpec:
    number: str
    supplier: Party
    buyer: Party
    issue_date: str = "2026-11-02"
    due_date: str = "2026-12-02"
    service_code: str | None = None
    engagement_number: str | None = None
    net_amount: Decimal = Decimal("100.00")
    vat_rate: Decimal = Decimal("20")
    item: str = "Prestation de maintenance"

    @property
    def vat_amount(self) -> Decimal:
        return (self.net_amount * self.vat_rate / 100).quantize(Decimal("0.01"))

    @property
    def gross_amount(self) -> Decimal:
        return self.net_amount + self.vat_amount


_UBL = """<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>
  <cbc:ID>{number}</cbc:ID>
  <cbc:IssueDate>{issue_date}</cbc:IssueDate>
  <cbc:DueDate>{due_date}</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
{buyer_reference}{order_reference}  <cac:AccountingSupplierParty>
    <cac:Party>
      <cac:PartyIdentification><cbc:ID schemeID="0009">{s_siret}</cbc:ID></cac:PartyIdentification>
      <cac:PostalAddress>
        <cbc:StreetName>12 rue des Archives</cbc:StreetName>
        <cbc:CityName>Paris</cbc:CityName>
        <cbc:PostalZone>75004</cbc:PostalZone>
        <cac:Country><cbc:IdentificationCode>FR</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      <cac:PartyTaxScheme>
        <cbc:CompanyID>{s_vat}</cbc:CompanyID>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
      </cac:PartyTaxScheme>
      <cac:PartyLegalEntity>
        <cbc:RegistrationName>{s_name}</cbc:RegistrationName>
        <cbc:CompanyID schemeID="0002">{s_siren}</cbc:CompanyID>
      </cac:PartyLegalEntity>
    </cac:Party>
  </cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty>
    <cac:Party>
      <cac:PartyIdentification><cbc:ID schemeID="0009">{b_siret}</cbc:ID></cac:PartyIdentification>
      <cac:PostalAddress>
        <cbc:StreetName>1 place de la Mairie</cbc:StreetName>
        <cbc:CityName>Lyon</cbc:CityName>
        <cbc:PostalZone>69001</cbc:PostalZone>
        <cac:Country><cbc:IdentificationCode>FR</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      <cac:PartyLegalEntity>
        <cbc:RegistrationName>{b_name}</cbc:RegistrationName>
        <cbc:CompanyID schemeID="0009">{b_siret}</cbc:CompanyID>
      </cac:PartyLegalEntity>
    </cac:Party>
  </cac:AccountingCustomerParty>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode>30</cbc:PaymentMeansCode>
    <cac:PayeeFinancialAccount><cbc:ID>FR7630006000011234567890189</cbc:ID></cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">{vat}</cbc:TaxAmount>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">{net}</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">{vat}</cbc:TaxAmount>
      <cac:TaxCategory>
        <cbc:ID>S</cbc:ID>
        <cbc:Percent>{rate}</cbc:Percent>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
      </cac:TaxCategory>
    </cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">{net}</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">{net}</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">{gross}</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">{gross}</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">{net}</cbc:LineExtensionAmount>
    <cac:Item>
      <cbc:Name>{item}</cbc:Name>
      <cac:ClassifiedTaxCategory>
        <cbc:ID>S</cbc:ID>
        <cbc:Percent>{rate}</cbc:Percent>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
      </cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">{net}</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</Invoice>
"""

_CII = """<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
 xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
 xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
 xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>{number}</ram:ID>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString format="102">{issue_date_102}</udt:DateTimeString></ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:IncludedSupplyChainTradeLineItem>
      <ram:AssociatedDocumentLineDocument><ram:LineID>1</ram:LineID></ram:AssociatedDocumentLineDocument>
      <ram:SpecifiedTradeProduct><ram:Name>{item}</ram:Name></ram:SpecifiedTradeProduct>
      <ram:SpecifiedLineTradeAgreement>
        <ram:NetPriceProductTradePrice><ram:ChargeAmount>{net}</ram:ChargeAmount></ram:NetPriceProductTradePrice>
      </ram:SpecifiedLineTradeAgreement>
      <ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="C62">1</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>
      <ram:SpecifiedLineTradeSettlement>
        <ram:ApplicableTradeTax>
          <ram:TypeCode>VAT</ram:TypeCode>
          <ram:CategoryCode>S</ram:CategoryCode>
          <ram:RateApplicablePercent>{rate}</ram:RateApplicablePercent>
        </ram:ApplicableTradeTax>
        <ram:SpecifiedTradeSettlementLineMonetarySummation><ram:LineTotalAmount>{net}</ram:LineTotalAmount></ram:SpecifiedTradeSettlementLineMonetarySummation>
      </ram:SpecifiedLineTradeSettlement>
    </ram:IncludedSupplyChainTradeLineItem>
    <ram:ApplicableHeaderTradeAgreement>
{cii_buyer_reference}      <ram:SellerTradeParty>
        <ram:GlobalID schemeID="0009">{s_siret}</ram:GlobalID>
        <ram:Name>{s_name}</ram:Name>
        <ram:SpecifiedLegalOrganization><ram:ID schemeID="0002">{s_siren}</ram:ID></ram:SpecifiedLegalOrganization>
        <ram:PostalTradeAddress>
          <ram:PostcodeCode>75004</ram:PostcodeCode>
          <ram:LineOne>12 rue des Archives</ram:LineOne>
          <ram:CityName>Paris</ram:CityName>
          <ram:CountryID>FR</ram:CountryID>
        </ram:PostalTradeAddress>
        <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">{s_vat}</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty>
        <ram:GlobalID schemeID="0009">{b_siret}</ram:GlobalID>
        <ram:Name>{b_name}</ram:Name>
        <ram:SpecifiedLegalOrganization><ram:ID schemeID="0009">{b_siret}</ram:ID></ram:SpecifiedLegalOrganization>
        <ram:PostalTradeAddress>
          <ram:PostcodeCode>69001</ram:PostcodeCode>
          <ram:LineOne>1 place de la Mairie</ram:LineOne>
          <ram:CityName>Lyon</ram:CityName>
          <ram:CountryID>FR</ram:CountryID>
        </ram:PostalTradeAddress>
      </ram:BuyerTradeParty>
{cii_order_reference}    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeDelivery>
      <ram:ActualDeliverySupplyChainEvent>
        <ram:OccurrenceDateTime><udt:DateTimeString format="102">{issue_date_102}</udt:DateTimeString></ram:OccurrenceDateTime>
      </ram:ActualDeliverySupplyChainEvent>
    </ram:ApplicableHeaderTradeDelivery>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementPaymentMeans>
        <ram:TypeCode>30</ram:TypeCode>
        <ram:PayeePartyCreditorFinancialAccount><ram:IBANID>FR7630006000011234567890189</ram:IBANID></ram:PayeePartyCreditorFinancialAccount>
      </ram:SpecifiedTradeSettlementPaymentMeans>
      <ram:ApplicableTradeTax>
        <ram:CalculatedAmount>{vat}</ram:CalculatedAmount>
        <ram:TypeCode>VAT</ram:TypeCode>
        <ram:BasisAmount>{net}</ram:BasisAmount>
        <ram:CategoryCode>S</ram:CategoryCode>
        <ram:RateApplicablePercent>{rate}</ram:RateApplicablePercent>
      </ram:ApplicableTradeTax>
      <ram:SpecifiedTradePaymentTerms>
        <ram:DueDateDateTime><udt:DateTimeString format="102">{due_date_102}</udt:DateTimeString></ram:DueDateDateTime>
      </ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:LineTotalAmount>{net}</ram:LineTotalAmount>
        <ram:TaxBasisTotalAmount>{net}</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">{vat}</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>{gross}</ram:GrandTotalAmount>
        <ram:DuePayableAmount>{gross}</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""


def _fields(spec: InvoiceSpec) -> dict[str, str]:
    s, b = spec.supplier, spec.buyer
    return {
        "number": escape(spec.number),
        "issue_date": spec.issue_date,
        "due_date": spec.due_date,
        "issue_date_102": spec.issue_date.replace("-", ""),
        "due_date_102": spec.due_date.replace("-", ""),
        "s_siret": s.siret,
        "s_siren": s.siren,
        "s_name": escape(s.name),
        "s_vat": s.vat_id,
        "b_siret": b.siret,
        "b_name": escape(b.name),
        "net": f"{spec.net_amount:.2f}",
        "vat": f"{spec.vat_amount:.2f}",
        "gross": f"{spec.gross_amount:.2f}",
        "rate": f"{spec.vat_rate:.2f}",
        "item": escape(spec.item),
        "buyer_reference": (
            f"  <cbc:BuyerReference>{escape(spec.service_code)}</cbc:BuyerReference>\n" if spec.service_code else ""
        ),
        "order_reference": (
            f"  <cac:OrderReference><cbc:ID>{escape(spec.engagement_number)}</cbc:ID></cac:OrderReference>\n"
            if spec.engagement_number
            else ""
        ),
        "cii_buyer_reference": (
            f"      <ram:BuyerReference>{escape(spec.service_code)}</ram:BuyerReference>\n" if spec.service_code else ""
        ),
        "cii_order_reference": (
            "      <ram:BuyerOrderReferencedDocument><ram:IssuerAssignedID>"
            f"{escape(spec.engagement_number)}</ram:IssuerAssignedID></ram:BuyerOrderReferencedDocument>\n"
            if spec.engagement_number
            else ""
        ),
    }


def ubl_invoice(spec: InvoiceSpec) -> bytes:
    return _UBL.format(**_fields(spec)).encode()


def cii_invoice(spec: InvoiceSpec) -> bytes:
    return _CII.format(**_fields(spec)).encode()


def facturx_pdf(spec: InvoiceSpec) -> bytes:
    """A Factur-X (EN 16931 profile) PDF carrying ``cii_invoice(spec)``, made with the factur-x library."""
    from facturx import generate_from_binary
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    pdf: bytes = generate_from_binary(buffer.getvalue(), cii_invoice(spec), flavor="factur-x", level="en16931")
    return pdf


# The demo directory's parties (config/demo/directory.toml): keep both in step.
DEMO_SUPPLIER = Party("40483304800022", "Papeterie Demo SAS")
DEMO_SUPPLIER_2 = Party("73282932000074", "Nettoyage Demo SARL")
DEMO_PROVIDER = Party("55210055400013", "Factur'Demo Services")
DEMO_BUYER_SERVICE = Party("21690123100011", "Commune de Demo-sur-Rhone")  # requires a service code
DEMO_BUYER_ENGAGEMENT = Party("13000550800010", "Agence Demo de l'Etat")  # requires an engagement number


NEW_FLOW_AT = datetime(2026, 3, 2, 8, 30, 0, 654321, tzinfo=UTC)


def new_flow(
    i: int, *, tracking_id: str | None = None, content: bytes | None = None, at: datetime = NEW_FLOW_AT
) -> NewFlow:
    """Flow ``i`` as the deposit service hands it to the store (``Store.create_flow``): an EDI flow of
    partner AAA001 whose bytes (``content``, a few bytes by default) go with its row."""
    content = b"<a/>" + bytes([i % 256]) if content is None else content
    return NewFlow(
        number_prefix="AAA001",
        file_name=f"flow-{i}.xml",
        syntax=Syntax.CII_16B,
        declared_syntax=False,
        channel=Channel.EDI,
        issuer_siret="12345678200010",
        depositor="partner:AAA001",
        sha256=f"{i:064x}",
        size_bytes=len(content),
        blob_key="",
        deposited_at=at,
        tracking_id=tracking_id,
        partner_code="AAA001",
        content=content,
    )


def integrating(number: str, supplier: Party = DEMO_SUPPLIER) -> InvoiceSpec:
    """An invoice that integrates under the demo directory: ``supplier`` bills the buyer requiring a
    service code, with one of its active service codes."""
    return InvoiceSpec(number, supplier, DEMO_BUYER_SERVICE, service_code="SERV-COMPTA")


def demo_specs() -> dict[str, InvoiceSpec]:
    """The demo invoices: file name → spec (``ok/`` integrate under the demo directory)."""
    ok = integrating("FA-2026-0001")
    return {
        "ok/ubl_service_code.xml": ok,
        "ok/ubl_engagement.xml": replace(
            ok,
            number="FA-2026-0002",
            buyer=DEMO_BUYER_ENGAGEMENT,
            service_code=None,
            engagement_number="EJ-2026-000123",
        ),
        "ok/cii_service_code.xml": replace(ok, number="FA-2026-0003"),
        "ok/facturx_service_code.pdf": replace(ok, number="FA-2026-0004"),
        # For the SFTP example the demo prints: an invoice the printed gRPC example does not deposit.
        "sftp/ubl_by_sftp.xml": replace(ok, number="FA-2026-0010"),
        "rejected/unknown_supplier.xml": replace(
            ok, number="FA-2026-0101", supplier=Party("83249481400011", "Inconnu SA")
        ),
        "rejected/supplier_not_issuer.xml": replace(ok, number="FA-2026-0102", supplier=DEMO_SUPPLIER_2),
        "rejected/buyer_siret_invalid.xml": replace(
            ok, number="FA-2026-0103", buyer=Party("21690123100012", "Commune mal saisie")
        ),
        "rejected/unknown_buyer.xml": replace(
            ok, number="FA-2026-0104", buyer=Party("21750001600019", "Commune inconnue")
        ),
        "rejected/inactive_buyer.xml": replace(
            ok, number="FA-2026-0105", buyer=Party("21130055300016", "Ancienne Commune Demo")
        ),
        "rejected/service_code_missing.xml": replace(ok, number="FA-2026-0106", service_code=None),
        "rejected/service_code_unknown.xml": replace(ok, number="FA-2026-0107", service_code="SERV-INCONNU"),
        "rejected/service_code_inactive.xml": replace(ok, number="FA-2026-0108", service_code="SERV-FERME"),
        "rejected/engagement_missing.xml": replace(
            ok, number="FA-2026-0109", buyer=DEMO_BUYER_ENGAGEMENT, service_code=None
        ),
        "rejected/invoice_number_too_long.xml": replace(ok, number="FA-2026-000000000000110"),
        "rejected/duplicate_in_flow.zip": replace(ok, number="FA-2026-0111"),
    }


def write_demo(root: Path) -> None:
    """Write the demo invoices under ``root`` (``ok/``, ``rejected/`` and ``sftp/``)."""
    import zipfile

    for name, spec in demo_specs().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".pdf"):
            path.write_bytes(facturx_pdf(spec))
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("invoice_a.xml", ubl_invoice(spec))
                zf.writestr("invoice_b.xml", ubl_invoice(replace(spec, net_amount=Decimal("50.00"))))
        elif name.startswith("ok/cii"):
            path.write_bytes(cii_invoice(spec))
        else:
            path.write_bytes(ubl_invoice(spec))


if __name__ == "__main__":
    write_demo(Path(sys.argv[1]))
