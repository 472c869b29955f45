"""The Chorus Pro business checks of each invoice against a small, hand-made directory."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from engine.business import check_invoices, duplicate_key, duplicate_keys, needed_sirets, siret_is_valid
from engine.catalogue import CATALOGUE, finding
from engine.directory import DirectorySnapshot, Service, Structure
from engine.model import Finding, InvoiceFacts, Severity
from engine.technical import DocumentResult

SUPPLIER = "40483304800022"
OTHER_SUPPLIER = "73282932000074"
PROVIDER = "55210055400013"
BUYER = "21690123100011"  # plain public buyer, no requirement
BUYER_SERVICE = "13000550800010"  # requires a service code
BUYER_ENGAGEMENT = "44306184100047"  # requires an engagement number
BUYER_EITHER = "35600000000048"  # one of the two (La Poste head office)
BUYER_INACTIVE = "21130055300016"
UNKNOWN_BUYER = "35600000049837"  # valid (La Poste rule) but not in the directory

DIRECTORY = DirectorySnapshot(
    {
        s.siret: s
        for s in (
            Structure(SUPPLIER, "Papeterie"),
            Structure(OTHER_SUPPLIER, "Nettoyage"),
            Structure(PROVIDER, "Provider", is_provider=True),
            Structure(BUYER, "Commune", is_public=True),
            Structure(
                BUYER_SERVICE,
                "Agence",
                is_public=True,
                service_code_required=True,
                services=(Service("SERV1", "Compta"), Service("OLD", "Ferme", active=False)),
            ),
            Structure(BUYER_ENGAGEMENT, "Etat", is_public=True, engagement_required=True),
            Structure(BUYER_EITHER, "Poste", is_public=True, service_or_engagement_required=True),
            Structure(BUYER_INACTIVE, "Ancienne", is_public=True, active=False),
        )
    }
)


def facts(**changes: object) -> InvoiceFacts:
    base = InvoiceFacts(
        document="a.xml",
        number="F-2026-001",
        type_code="380",
        issue_date="2026-11-02",
        currency="EUR",
        supplier_id=SUPPLIER,
        supplier_name="Papeterie",
        buyer_id=BUYER,
        buyer_name="Commune",
        service_code=None,
        engagement_number=None,
        total_without_vat=Decimal("100.00"),
        total_with_vat=Decimal("120.00"),
        amount_due=Decimal("120.00"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def doc(own: tuple[Finding, ...] = (), **changes: object) -> DocumentResult:
    return DocumentResult(facts(**changes), own)


def run(
    *documents: DocumentResult,
    issuer: str = SUPPLIER,
    directory: DirectorySnapshot | None = DIRECTORY,
    earlier: dict[tuple[str, str, str], str] | None = None,
) -> list[tuple[InvoiceFacts, tuple[Finding, ...]]]:
    return check_invoices(documents, issuer_siret=issuer, directory=directory, earlier=earlier or {})


def codes(result: list[tuple[InvoiceFacts, tuple[Finding, ...]]], index: int = 0) -> list[str]:
    return [f.code for f in result[index][1]]


# --- SIRET ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "siret",
    [SUPPLIER, OTHER_SUPPLIER, "73282932000074", "35600000000048", "35600000049837", "35600000011112"],
)
def test_valid_sirets(siret: str) -> None:
    """Luhn-valid SIRETs pass; La Poste's establishments pass with the sum-of-digits-multiple-of-5 rule."""
    assert siret_is_valid(siret)


@pytest.mark.parametrize(
    "siret",
    [
        None,
        "",
        "404833048",
        "40483304800023",
        "4048330480002",
        "404833048000222",
        "4048330480002a",
        "40483304800022 ",
        "٤0483304800022",
        "35600000000049",
        "35600000049838",
    ],
)
def test_invalid_sirets(siret: str | None) -> None:
    """Wrong length, non-ASCII digits, a bad Luhn key or a La Poste SIRET failing its rule are refused."""
    assert not siret_is_valid(siret)


def test_la_poste_uses_its_own_rule() -> None:
    """A La Poste SIRET that is Luhn-valid but whose digit sum is not a multiple of 5 is refused
    (except the head office), proving the special rule replaces Luhn."""
    luhn_only = next(
        f"356000000{n:05d}"
        for n in range(1, 100000)
        if f"{n:05d}" != "00048" and _luhn(f"356000000{n:05d}") and sum(map(int, f"356000000{n:05d}")) % 5
    )
    assert not siret_is_valid(luhn_only)


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# --- number and duplicates ------------------------------------------------------------------------------


def test_clean_invoice_has_no_finding() -> None:
    """A well-formed invoice to a known, active buyer without requirements raises nothing."""
    assert run(doc()) == [(facts(), ())]


def test_own_findings_come_first() -> None:
    """The document's own EN 16931 findings are kept, before the platform's."""
    own = finding("EN16931_RULE", "BR-CO-15 broken", rule="BR-CO-15", document="a.xml")
    result = run(doc((own,), number=None))
    assert result[0][1][0] is own
    assert codes(result) == ["EN16931_RULE", "INVOICE_NUMBER_MISSING"]


@pytest.mark.parametrize("number", [None, "", "   "])
def test_number_missing(number: str | None) -> None:
    """A missing or blank invoice number is INVOICE_NUMBER_MISSING."""
    assert codes(run(doc(number=number))) == ["INVOICE_NUMBER_MISSING"]


def test_number_length_limit() -> None:
    """20 characters pass; 21 are INVOICE_NUMBER_TOO_LONG, naming the number and its length."""
    assert codes(run(doc(number="X" * 20))) == []
    result = run(doc(number="X" * 21))
    assert codes(result) == ["INVOICE_NUMBER_TOO_LONG"]
    found = result[0][1][0]
    assert "X" * 21 in found.message and "21" in found.message
    assert found.document == "a.xml" and found.business_term == "BT-1"


def test_duplicate_in_flow_flags_later_occurrences() -> None:
    """The second and third invoice with one supplier, year and number are flagged, naming the first."""
    result = run(doc(document="a.xml"), doc(document="b.xml"), doc(document="c.xml"))
    assert codes(result, 0) == []
    for index, name in ((1, "b.xml"), (2, "c.xml")):
        (dup,) = result[index][1]
        assert dup.code == "DUPLICATE_IN_FLOW"
        assert dup.document == name
        assert "a.xml" in dup.message and "F-2026-001" in dup.message


@pytest.mark.parametrize(
    "changes",
    [{"issue_date": "2025-11-02"}, {"supplier_id": OTHER_SUPPLIER}, {"number": "F-2026-002"}],
)
def test_same_number_other_year_or_supplier_is_not_a_duplicate(changes: dict[str, str]) -> None:
    """A different year, supplier or number is not a duplicate."""
    result = run(doc(document="a.xml"), doc(document="b.xml", **changes), issuer=PROVIDER)
    assert "DUPLICATE_IN_FLOW" not in codes(result, 1)


def test_duplicate_of_earlier_flow_names_it() -> None:
    """An invoice already integrated by an earlier flow is DUPLICATE_INVOICE, naming that flow."""
    earlier = {(SUPPLIER, "2026", "F-2026-001"): "AAA0011100000000000000007"}
    (dup,) = run(doc(), earlier=earlier)[0][1]
    assert dup.code == "DUPLICATE_INVOICE"
    assert "AAA0011100000000000000007" in dup.message


def test_duplicate_key() -> None:
    """The key is (supplier, year, number); without one of them there is none."""
    assert duplicate_key(facts()) == (SUPPLIER, "2026", "F-2026-001")
    assert duplicate_key(facts(number=None)) is None
    assert duplicate_key(facts(supplier_id="")) is None
    assert duplicate_key(facts(issue_date=None)) is None
    assert duplicate_key(facts(issue_date="26-11-02")) is None
    assert duplicate_keys([doc(), doc(document="b.xml"), doc(number=None)]) == {(SUPPLIER, "2026", "F-2026-001")}


def test_needed_sirets() -> None:
    """The snapshot must hold the issuer, every supplier and every buyer of the flow."""
    assert needed_sirets([doc(), doc(buyer_id=BUYER_SERVICE, supplier_id=None)], PROVIDER) == {
        PROVIDER,
        SUPPLIER,
        BUYER,
        BUYER_SERVICE,
    }


# --- amount ------------------------------------------------------------------------------------------------


def test_negative_amount_on_invoice() -> None:
    """A negative amount due on an invoice (380) is AMOUNT_INVALID; on a credit note (381) it is not."""
    result = run(doc(amount_due=Decimal("-5.00")))
    assert codes(result) == ["AMOUNT_INVALID"]
    assert "-5.00 EUR" in result[0][1][0].message
    assert codes(run(doc(amount_due=Decimal("-5.00"), type_code="381"))) == []
    assert codes(run(doc(amount_due=Decimal("0.00")))) == []


# --- supplier ----------------------------------------------------------------------------------------------


def test_supplier_unknown() -> None:
    """A supplier identifier absent from the directory (or missing) is SUPPLIER_UNKNOWN, naming it."""
    result = run(doc(supplier_id="99999999999999"))
    assert codes(result) == ["SUPPLIER_UNKNOWN"]
    assert "99999999999999" in result[0][1][0].message
    assert codes(run(doc(supplier_id=None))) == ["SUPPLIER_UNKNOWN"]


def test_supplier_not_issuer() -> None:
    """A known supplier other than the issuer is refused, unless the issuer is an invoicing provider."""
    result = run(doc(supplier_id=OTHER_SUPPLIER))
    assert codes(result) == ["SUPPLIER_NOT_ISSUER"]
    assert OTHER_SUPPLIER in result[0][1][0].message and SUPPLIER in result[0][1][0].message
    assert codes(run(doc(supplier_id=OTHER_SUPPLIER), issuer=PROVIDER)) == []


# --- buyer -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("buyer", [None, "216901231", "21690123100012"])
def test_buyer_siret_invalid(buyer: str | None) -> None:
    """A missing buyer, a SIREN or a SIRET with a bad key is BUYER_SIRET_INVALID (and nothing else)."""
    result = run(doc(buyer_id=buyer))
    assert codes(result) == ["BUYER_SIRET_INVALID"]
    assert result[0][1][0].location is not None and "BT-46" in result[0][1][0].location


def test_buyer_unknown_and_inactive() -> None:
    """A valid SIRET absent from the directory is BUYER_UNKNOWN; an inactive structure is BUYER_INACTIVE."""
    assert codes(run(doc(buyer_id=UNKNOWN_BUYER))) == ["BUYER_UNKNOWN"]
    assert codes(run(doc(buyer_id=BUYER_INACTIVE))) == ["BUYER_INACTIVE"]


def test_service_code_rules() -> None:
    """A required-but-missing, unknown or inactive service code each has its finding; a good one passes."""
    assert codes(run(doc(buyer_id=BUYER_SERVICE))) == ["SERVICE_CODE_REQUIRED"]
    assert codes(run(doc(buyer_id=BUYER_SERVICE, service_code="NOPE"))) == ["SERVICE_CODE_UNKNOWN"]
    assert codes(run(doc(buyer_id=BUYER_SERVICE, service_code="OLD"))) == ["SERVICE_CODE_INACTIVE"]
    assert codes(run(doc(buyer_id=BUYER_SERVICE, service_code="SERV1"))) == []
    unknown = run(doc(buyer_id=BUYER_SERVICE, service_code="NOPE"))[0][1][0]
    assert "NOPE" in unknown.message and BUYER_SERVICE in unknown.message


def test_service_code_ignored_when_buyer_has_no_services() -> None:
    """A service code sent to a buyer with no services and no requirement is not checked."""
    assert codes(run(doc(service_code="ANY"))) == []


def test_engagement_required() -> None:
    """A buyer requiring an engagement number rejects an invoice without one."""
    assert codes(run(doc(buyer_id=BUYER_ENGAGEMENT))) == ["ENGAGEMENT_NUMBER_REQUIRED"]
    assert codes(run(doc(buyer_id=BUYER_ENGAGEMENT, engagement_number="EJ123"))) == []


def test_service_or_engagement_required() -> None:
    """A buyer requiring one of the two accepts either and rejects neither."""
    assert codes(run(doc(buyer_id=BUYER_EITHER))) == ["SERVICE_OR_ENGAGEMENT_REQUIRED"]
    assert codes(run(doc(buyer_id=BUYER_EITHER, engagement_number="EJ1"))) == []


# --- without directory -------------------------------------------------------------------------------------


def test_without_directory_number_and_duplicates_still_run() -> None:
    """Without a directory each invoice gets one info DIRECTORY_CHECKS_NOT_RUN; number and duplicate checks
    still run and directory checks do not (an unknown buyer passes)."""
    result = run(doc(buyer_id="123"), doc(document="b.xml", number="Y" * 25), doc(document="c.xml"), directory=None)
    assert codes(result, 0) == ["DIRECTORY_CHECKS_NOT_RUN"]
    assert codes(result, 1) == ["INVOICE_NUMBER_TOO_LONG", "DIRECTORY_CHECKS_NOT_RUN"]
    assert codes(result, 2) == ["DUPLICATE_IN_FLOW", "DIRECTORY_CHECKS_NOT_RUN"]
    note = result[0][1][0]
    assert note.severity is Severity.INFO and not note.is_error and note.document == "a.xml"


def test_every_finding_is_catalogued_and_located() -> None:
    """Every finding the checks emit is a catalogued code and names its document."""
    result = run(
        doc(
            number=None,
            supplier_id=OTHER_SUPPLIER,
            buyer_id=BUYER_SERVICE,
            service_code="OLD",
            amount_due=Decimal("-1"),
        ),
        doc(document="b.xml", buyer_id=BUYER_INACTIVE),
    )
    for invoice, found in result:
        assert found
        for f in found:
            assert f.code in CATALOGUE
            assert f.document == invoice.document
