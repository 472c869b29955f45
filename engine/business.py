"""The platform (Chorus Pro) business checks of each invoice of a flow, against the directory.

Pure: takes the per-document results of the content check, the directory structures the flow needs
and the earlier integrated invoice numbers; returns, per document and in order, the invoice facts and
all their findings (the document's own EN 16931 findings first, then the ones added here). A failed
check is a ``Finding`` (codes from ``engine.catalogue`` only), never an exception.

Checks, per invoice (DESIGN §6, domain.md §3.2, §6.1):

* invoice number (BT-1) present and at most 20 characters (Chorus Pro rule G1.05);
* duplicate number for the same supplier and year (first four characters of the issue date): inside the
  flow (every occurrence after the first) and against invoices integrated by earlier flows;
* amount due (BT-115) not negative on an invoice (type 380): a negative amount is a credit note;
* with a directory: supplier known and equal to the issuing structure unless the issuer is an invoicing
  provider; buyer SIRET well-formed, known and active; the buyer's service code and engagement number
  requirements. Without a directory these are skipped and each invoice says so with an info finding.

The worker asks the store for the keys ``duplicate_key`` gives and builds the ``DirectorySnapshot``
from ``needed_sirets``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from engine.catalogue import finding
from engine.directory import DirectorySnapshot, Structure
from engine.model import Finding, InvoiceFacts
from engine.technical import DocumentResult

MAX_INVOICE_NUMBER_CHARS = 20
SIRET_DIGITS = 14
LA_POSTE_SIREN = "356000000"
LA_POSTE_HEAD_OFFICE_SIRET = "35600000000048"  # Luhn-valid, unlike La Poste's other establishments
INVOICE_TYPE_CODE = "380"

DuplicateKey = tuple[str, str, str]  # (supplier id, year, invoice number)

# Where each checked value sits, named by its EN 16931 business term (syntax-neutral).
LOC_NUMBER = "BT-1 Invoice number"
LOC_SUPPLIER = "BG-4 Seller / BT-29 Seller identifier"
LOC_BUYER = "BG-7 Buyer / BT-46 Buyer identifier"
LOC_SERVICE = "BT-10 Buyer reference (service code)"
LOC_ENGAGEMENT = "BT-13 Purchase order reference (engagement number)"
LOC_AMOUNT_DUE = "BG-22 Document totals / BT-115 Amount due for payment"


def siret_is_valid(siret: str | None) -> bool:
    """Whether ``siret`` is 14 ASCII digits passing INSEE's check.

    The check is Luhn, except for La Poste (SIREN 356000000), whose establishments' SIRETs are valid when
    the sum of their digits is a multiple of 5 (its head office, 35600000000048, passes Luhn).
    """
    if siret is None or len(siret) != SIRET_DIGITS or not (siret.isascii() and siret.isdigit()):
        return False
    if siret.startswith(LA_POSTE_SIREN) and siret != LA_POSTE_HEAD_OFFICE_SIRET:
        return sum(int(c) for c in siret) % 5 == 0
    return _luhn_ok(siret)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _present(value: str | None) -> str | None:
    """``value`` stripped, or ``None`` when missing or blank."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def duplicate_key(facts: InvoiceFacts) -> DuplicateKey | None:
    """``(supplier id, year, invoice number)``, or ``None`` when one of them cannot be read."""
    supplier = _present(facts.supplier_id)
    number = _present(facts.number)
    year = (facts.issue_date or "").strip()[:4]
    if supplier is None or number is None or not (len(year) == 4 and year.isascii() and year.isdigit()):
        return None
    return (supplier, year, number)


def duplicate_keys(documents: Iterable[DocumentResult]) -> set[DuplicateKey]:
    """Every duplicate key of a flow's documents: what the worker asks the store about."""
    keys = (duplicate_key(d.facts) for d in documents)
    return {k for k in keys if k is not None}


def needed_sirets(documents: Iterable[DocumentResult], issuer_siret: str) -> set[str]:
    """The structures a ``DirectorySnapshot`` must hold to check these documents."""
    sirets = {issuer_siret}
    for document in documents:
        for value in (document.facts.supplier_id, document.facts.buyer_id):
            present = _present(value)
            if present is not None:
                sirets.add(present)
    return sirets


def check_invoices(
    documents: Sequence[DocumentResult],
    *,
    issuer_siret: str,
    directory: DirectorySnapshot | None,
    earlier: Mapping[DuplicateKey, str],
) -> list[tuple[InvoiceFacts, tuple[Finding, ...]]]:
    """Per document, in order: its facts and all its findings (its own first, then the platform's)."""
    first_seen: dict[DuplicateKey, str] = {}
    checked: list[tuple[InvoiceFacts, tuple[Finding, ...]]] = []
    for document in documents:
        facts = document.facts
        found = list(document.findings)
        found += _number_findings(facts)
        found += _duplicate_findings(facts, first_seen, earlier)
        found += _amount_findings(facts)
        if directory is None:
            found.append(
                finding(
                    "DIRECTORY_CHECKS_NOT_RUN",
                    "The supplier, recipient, service code and engagement number checks were not run "
                    "(no directory given).",
                    document=facts.document,
                )
            )
        else:
            found += _supplier_findings(facts, issuer_siret, directory)
            found += _buyer_findings(facts, directory)
        checked.append((facts, tuple(found)))
    return checked


def _number_findings(facts: InvoiceFacts) -> list[Finding]:
    number = _present(facts.number)
    if number is None:
        return [finding("INVOICE_NUMBER_MISSING", location=LOC_NUMBER, document=facts.document)]
    if len(number) > MAX_INVOICE_NUMBER_CHARS:
        return [
            finding(
                "INVOICE_NUMBER_TOO_LONG",
                f"The invoice number {number!r} has {len(number)} characters; "
                f"at most {MAX_INVOICE_NUMBER_CHARS} are allowed.",
                rule="G1.05",
                location=LOC_NUMBER,
                document=facts.document,
            )
        ]
    return []


def _duplicate_findings(
    facts: InvoiceFacts, first_seen: dict[DuplicateKey, str], earlier: Mapping[DuplicateKey, str]
) -> list[Finding]:
    key = duplicate_key(facts)
    if key is None:
        return []
    supplier, year, number = key
    found: list[Finding] = []
    first_document = first_seen.get(key)
    if first_document is None:
        first_seen[key] = facts.document
    else:
        found.append(
            finding(
                "DUPLICATE_IN_FLOW",
                f"The invoice number {number!r} of supplier {supplier} for {year} already appears in this "
                f"flow, in document {first_document!r}.",
                rule="CPP-DUPLICATE",
                location=LOC_NUMBER,
                document=facts.document,
            )
        )
    earlier_flow = earlier.get(key)
    if earlier_flow is not None:
        found.append(
            finding(
                "DUPLICATE_INVOICE",
                f"The invoice number {number!r} of supplier {supplier} for {year} was already integrated "
                f"in flow {earlier_flow}.",
                rule="CPP-DUPLICATE",
                location=LOC_NUMBER,
                document=facts.document,
            )
        )
    return found


def _amount_findings(facts: InvoiceFacts) -> list[Finding]:
    due = facts.amount_due
    if (facts.type_code or "").strip() == INVOICE_TYPE_CODE and due is not None and due < Decimal(0):
        return [
            finding(
                "AMOUNT_INVALID",
                f"The amount due {_amount(due, facts.currency)} is negative on an invoice (type {INVOICE_TYPE_CODE}).",
                location=LOC_AMOUNT_DUE,
                document=facts.document,
            )
        ]
    return []


def _amount(value: Decimal, currency: str | None) -> str:
    return f"{value:f} {currency}" if currency else f"{value:f}"


def _supplier_findings(facts: InvoiceFacts, issuer_siret: str, directory: DirectorySnapshot) -> list[Finding]:
    supplier_id = _present(facts.supplier_id)
    if supplier_id is None:
        return [
            finding(
                "SUPPLIER_UNKNOWN",
                "The invoice carries no supplier identifier.",
                location=LOC_SUPPLIER,
                document=facts.document,
            )
        ]
    if directory.get(supplier_id) is None:
        return [
            finding(
                "SUPPLIER_UNKNOWN",
                f"The supplier identifier {supplier_id!r} is not known to the platform.",
                location=LOC_SUPPLIER,
                document=facts.document,
            )
        ]
    issuer = directory.get(issuer_siret)
    if supplier_id != issuer_siret and not (issuer is not None and issuer.is_provider):
        return [
            finding(
                "SUPPLIER_NOT_ISSUER",
                f"The supplier {supplier_id} is not the structure {issuer_siret} the flow was deposited for, "
                "which is not an invoicing provider.",
                location=LOC_SUPPLIER,
                document=facts.document,
            )
        ]
    return []


def _buyer_findings(facts: InvoiceFacts, directory: DirectorySnapshot) -> list[Finding]:
    buyer_id = _present(facts.buyer_id)
    if not siret_is_valid(buyer_id):
        shown = repr(buyer_id) if buyer_id is not None else "(missing)"
        return [
            finding(
                "BUYER_SIRET_INVALID",
                f"The recipient identifier {shown} is not a valid 14-digit SIRET.",
                location=LOC_BUYER,
                document=facts.document,
            )
        ]
    buyer = directory.get(buyer_id)
    if buyer is None:
        return [
            finding(
                "BUYER_UNKNOWN",
                f"The recipient {buyer_id} is not known to the platform.",
                location=LOC_BUYER,
                document=facts.document,
            )
        ]
    if not buyer.active:
        return [
            finding(
                "BUYER_INACTIVE",
                f"The recipient {buyer_id} ({buyer.name}) is not active.",
                location=LOC_BUYER,
                document=facts.document,
            )
        ]
    return _routing_findings(facts, buyer)


def _routing_findings(facts: InvoiceFacts, buyer: Structure) -> list[Finding]:
    """The buyer's service code and engagement number requirements (domain.md §3.2 structure flags)."""
    service_code = _present(facts.service_code)
    engagement = _present(facts.engagement_number)
    doc = facts.document
    found: list[Finding] = []
    if buyer.service_code_required and service_code is None:
        found.append(
            finding(
                "SERVICE_CODE_REQUIRED",
                f"The recipient {buyer.siret} requires a service code and the invoice has none.",
                location=LOC_SERVICE,
                document=doc,
            )
        )
    if service_code is not None and (buyer.services or buyer.service_code_required):
        service = buyer.service(service_code)
        if service is None:
            found.append(
                finding(
                    "SERVICE_CODE_UNKNOWN",
                    f"The service code {service_code!r} is unknown to the recipient {buyer.siret}.",
                    location=LOC_SERVICE,
                    document=doc,
                )
            )
        elif not service.active:
            found.append(
                finding(
                    "SERVICE_CODE_INACTIVE",
                    f"The service code {service_code!r} of the recipient {buyer.siret} is inactive.",
                    location=LOC_SERVICE,
                    document=doc,
                )
            )
    if buyer.engagement_required and engagement is None:
        found.append(
            finding(
                "ENGAGEMENT_NUMBER_REQUIRED",
                f"The recipient {buyer.siret} requires an engagement number and the invoice has none.",
                location=LOC_ENGAGEMENT,
                document=doc,
            )
        )
    already_required = any(f.code in {"SERVICE_CODE_REQUIRED", "ENGAGEMENT_NUMBER_REQUIRED"} for f in found)
    neither = service_code is None and engagement is None
    if buyer.service_or_engagement_required and neither and not already_required:
        found.append(
            finding(
                "SERVICE_OR_ENGAGEMENT_REQUIRED",
                f"The recipient {buyer.siret} requires a service code or an engagement number "
                "and the invoice has neither.",
                location=LOC_SERVICE,
                document=doc,
            )
        )
    return found
