"""The catalogue of report error codes: every code a report can carry, with its kind, message and hint.

A rejected invoice or flow is data in a report, not an exception (STYLE rule 6); this module is the
single list of what such data can say. Codes are stable strings: clients and EDI software match on them.
``message`` is the default text (a finding may carry a more precise one, e.g. the XSD message);
``business_term`` names the EN 16931 term concerned where one applies. The README prints this table
(``python -m engine.catalogue`` renders it as Markdown).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.catalogue_fr_flux2 import GENERIC_CODE, code_of
from engine.catalogue_fr_flux2 import RULES as FR_FLUX2_RULES
from engine.model import Finding, Kind, Severity


@dataclass(frozen=True)
class Entry:
    code: str
    kind: Kind
    message: str
    hint: str
    business_term: str | None = None
    severity: Severity = Severity.ERROR


T = Kind.TECHNICAL
B = Kind.BUSINESS

_ENTRIES = (
    # Technical: the flow as a file (DESIGN §4, PROCESSED_SE_CPP checks), rejects the whole flow.
    Entry("FILE_EMPTY", T, "The deposited file is empty.", "Deposit the file again with its content."),
    Entry(
        "FILE_TOO_LARGE",
        T,
        "The file exceeds the maximum flow size.",
        "Split the invoices over several flows below the size limit.",
    ),
    Entry(
        "ARCHIVE_UNREADABLE",
        T,
        "The archive cannot be read.",
        "Send a valid zip or tar.gz archive, or a single XML or PDF file.",
    ),
    Entry(
        "ARCHIVE_UNSAFE_PATH",
        T,
        "An archive member has an absolute path, '..' or is a link.",
        "Put the invoices at the root of the archive with plain file names.",
    ),
    Entry(
        "ARCHIVE_TOO_MANY_DOCUMENTS",
        T,
        "The archive holds more documents than a flow may carry.",
        "Send at most 500 invoices per flow.",
    ),
    Entry(
        "ARCHIVE_MEMBER_TOO_LARGE",
        T,
        "An archive member exceeds the maximum document size.",
        "Send smaller documents or split the flow.",
    ),
    Entry(
        "ARCHIVE_TOO_LARGE",
        T,
        "The archive unpacks to more than the maximum flow size.",
        "Split the invoices over several flows.",
    ),
    Entry(
        "ARCHIVE_COMPRESSION_RATIO",
        T,
        "An archive member is compressed suspiciously well (zip bomb).",
        "Send the documents uncompressed or with ordinary compression.",
    ),
    Entry("ARCHIVE_EMPTY", T, "The archive holds no document.", "Put at least one invoice in the archive."),
    Entry(
        "ARCHIVE_HEADER_TOO_LARGE",
        T,
        "An archive entry's header (tar pax or long-name header, zip name and extra fields) is too large.",
        "Use plain, short member names; do not add extended attributes to the archive.",
    ),
    Entry(
        "ARCHIVE_UNSUPPORTED_MEMBER",
        T,
        "The archive holds an entry of a refused type (sparse file, volume label, multi-volume part).",
        "Put only regular files (and folders) in the archive.",
    ),
    Entry(
        "FILE_NOT_XML",
        T,
        "Not an invoice (not XML): the document does not start with '<' (a text, image or office file?).",
        "Deposit the invoice's XML (UBL or CII), its Factur-X PDF, or an archive of them.",
    ),
    Entry(
        "XML_NOT_WELL_FORMED",
        T,
        "The XML document is not well-formed.",
        "Fix the XML syntax at the reported line; check the encoding declaration.",
    ),
    Entry(
        "XML_FORBIDDEN_CONSTRUCT",
        T,
        "The XML document declares a DTD, an entity or an external reference, which are refused.",
        "Remove the DOCTYPE declaration and any entity definitions.",
    ),
    Entry(
        "XML_TOO_LARGE",
        T,
        "The XML document exceeds the maximum size or the flow's budget of XML elements.",
        "Split the invoices over several flows; remove empty or repeated elements.",
    ),
    Entry(
        "XML_TOO_DEEP",
        T,
        "The XML document nests its elements deeper than accepted.",
        "Send the invoice as its schema defines it, without extra nesting.",
    ),
    Entry(
        "SYNTAX_UNKNOWN",
        T,
        "The document is not an invoice of a known syntax.",
        "Send a UBL 2.1 Invoice/CreditNote, a CII D16B invoice or a Factur-X PDF.",
    ),
    Entry(
        "SYNTAX_UNSUPPORTED",
        T,
        "The document's syntax is recognised but not accepted.",
        "Convert the invoice to UBL 2.1, CII D16B or Factur-X (EN 16931 or BASIC profile).",
    ),
    Entry(
        "SYNTAX_MISMATCH",
        T,
        "The declared syntax does not match the content of the file.",
        "Declare the syntax that matches the content, or leave it empty to have it detected.",
    ),
    Entry(
        "SYNTAX_MIXED",
        T,
        "The archive mixes documents of several syntaxes.",
        "Deposit documents of different syntaxes in separate flows.",
    ),
    Entry("PDF_UNREADABLE", T, "The PDF file cannot be read.", "Send a valid PDF/A-3 file."),
    Entry(
        "PDF_NO_XML",
        T,
        "The PDF carries no embedded Factur-X XML.",
        "Embed the factur-x.xml attachment (Factur-X PDF/A-3), or deposit the XML itself.",
    ),
    Entry(
        "PDF_TOO_MANY_OBJECTS",
        T,
        "The PDF holds more objects (cross-reference entries) than accepted.",
        "Send the PDF/A-3 invoice as produced by the invoicing software, without appended content.",
    ),
    Entry(
        "PDF_STRUCTURE_TOO_LARGE",
        T,
        "The PDF's structure (object or cross-reference streams, arrays, dictionaries) exceeds the limits.",
        "Send the PDF/A-3 invoice as produced by the invoicing software.",
    ),
    Entry(
        "PDF_TOO_MANY_ATTACHMENTS",
        T,
        "The PDF carries more attachments than accepted.",
        "Embed the invoice XML and only the supporting documents the invoice needs.",
    ),
    Entry(
        "PDF_ATTACHMENT_TOO_LARGE",
        T,
        "An attachment of the PDF exceeds the maximum attachment size.",
        "Send large supporting documents separately, not embedded in the invoice PDF.",
    ),
    Entry(
        "PDF_ATTACHMENTS_TOO_LARGE",
        T,
        "The attachments of the PDF together exceed the maximum size.",
        "Send large supporting documents separately, not embedded in the invoice PDF.",
    ),
    Entry(
        "FACTURX_PROFILE_NOT_ACCEPTED",
        T,
        "The Factur-X profile is not an EN 16931-compliant invoice (MINIMUM or BASIC WL).",
        "Use the BASIC, EN 16931 or EXTENDED profile.",
        business_term="BT-24",
    ),
    Entry(
        "XSD_INVALID",
        T,
        "The document does not conform to its XML schema.",
        "Fix the element reported at the given line so the document validates against its XSD.",
    ),
    Entry(
        "ATTACHMENT_MISSING",
        T,
        "A mixed (E2) flow must carry the invoice image as an attachment.",
        "Embed the PDF in AdditionalDocumentReference/Attachment, or declare an E1 syntax.",
        business_term="BG-24",
    ),
    # System: the check could not run; the flow goes to WARNING, never INTEGRATED (DESIGN §7).
    Entry(
        "CHECK_FAILED",
        T,
        "A check could not run; the flow was not judged.",
        "Deposit the whole flow again; if it keeps failing, contact the platform operator.",
    ),
    Entry(
        "CHECK_TIMEOUT",
        T,
        "A check did not finish in time; the flow was not judged.",
        "Deposit the whole flow again, or split it into smaller flows.",
    ),
    Entry(
        "CHECK_OUT_OF_MEMORY",
        T,
        "A check needed more memory than a validation process may use, or its process died; the flow was not judged.",
        "Split the invoices over several smaller flows; if a small flow fails too, contact the platform operator.",
    ),
    Entry(
        "PROCESSING_INTERRUPTED",
        T,
        "Processing was interrupted repeatedly; the flow is held.",
        "An operator releases or closes the flow; no action is needed from the depositor yet.",
    ),
    # Business: per invoice.
    Entry(
        "EN16931_RULE",
        B,
        "The invoice breaks an EN 16931 business rule.",
        "Fix the business term named by the rule.",
    ),
    Entry(
        "EN16931_WARNING",
        B,
        "The invoice triggers an EN 16931 warning.",
        "No action required; consider fixing the business term named by the rule.",
        severity=Severity.WARNING,
    ),
    Entry(
        "FACTURX_PROFILE_RULE",
        B,
        "The invoice breaks a rule of its Factur-X profile.",
        "Fix the element named by the rule, or declare the profile the content matches.",
    ),
    Entry(
        "FACTURX_PROFILE_WARNING",
        B,
        "The invoice triggers a warning of its Factur-X profile.",
        "No action required; consider fixing the element named by the rule.",
        severity=Severity.WARNING,
    ),
    # Business, ruleset en16931+fr-flux2: the French e-invoicing reform's "Flux 2" rules; the message is
    # followed by the rule's own French text (engine/catalogue_fr_flux2.py).
    Entry(
        GENERIC_CODE,
        B,
        "The invoice breaks a rule of the French e-invoicing reform (Flux 2).",
        "Fix the business term named by the rule; its French text says what is expected.",
    ),
    *(Entry(code_of(rule), B, message, hint, business_term=term) for rule, term, message, hint in FR_FLUX2_RULES),
    Entry(
        "SUPPLIER_UNKNOWN",
        B,
        "The supplier identifier is not known to the platform.",
        "Use the supplier's SIRET as registered on the platform.",
        business_term="BT-29",
    ),
    Entry(
        "SUPPLIER_NOT_ISSUER",
        B,
        "The supplier of the invoice is not the structure the flow was deposited for.",
        "Deposit the flow for the supplier's structure, or through an invoicing provider.",
        business_term="BT-29",
    ),
    Entry(
        "BUYER_SIRET_INVALID",
        B,
        "The recipient identifier is not a valid 14-digit SIRET.",
        "Use the 14-digit SIRET of the public recipient (a SIREN of 9 digits is refused).",
        business_term="BT-46",
    ),
    Entry(
        "BUYER_UNKNOWN",
        B,
        "The recipient is not known to the platform.",
        "Check the recipient's SIRET in the public structures directory.",
        business_term="BT-46",
    ),
    Entry(
        "BUYER_INACTIVE",
        B,
        "The recipient structure is not active.",
        "Check the recipient's SIRET; the structure no longer receives invoices.",
        business_term="BT-46",
    ),
    Entry(
        "SERVICE_CODE_REQUIRED",
        B,
        "The recipient requires a service code.",
        "Fill the buyer reference with one of the recipient's active service codes.",
        business_term="BT-10",
    ),
    Entry(
        "SERVICE_CODE_UNKNOWN",
        B,
        "The service code is unknown to the recipient.",
        "Use one of the recipient's service codes from the structures directory.",
        business_term="BT-10",
    ),
    Entry(
        "SERVICE_CODE_INACTIVE",
        B,
        "The service code of the recipient is inactive.",
        "Use an active service code of the recipient.",
        business_term="BT-10",
    ),
    Entry(
        "ENGAGEMENT_NUMBER_REQUIRED",
        B,
        "The recipient requires an engagement number.",
        "Fill the purchase order reference with the legal engagement number.",
        business_term="BT-13",
    ),
    Entry(
        "SERVICE_OR_ENGAGEMENT_REQUIRED",
        B,
        "The recipient requires a service code or an engagement number.",
        "Fill the buyer reference (service code) or the purchase order reference (engagement number).",
        business_term="BT-10",
    ),
    Entry(
        "INVOICE_NUMBER_MISSING",
        B,
        "The invoice has no number.",
        "Give the invoice its number.",
        business_term="BT-1",
    ),
    Entry(
        "INVOICE_NUMBER_TOO_LONG",
        B,
        "The invoice number is longer than 20 characters.",
        "Shorten the invoice number to at most 20 characters.",
        business_term="BT-1",
    ),
    Entry(
        "DUPLICATE_IN_FLOW",
        B,
        "The same invoice number appears twice for this supplier and year in the flow.",
        "Give each invoice its own number, or remove the duplicate.",
        business_term="BT-1",
    ),
    Entry(
        "DUPLICATE_INVOICE",
        B,
        "An invoice with this number was already integrated for this supplier and year.",
        "Do not deposit an invoice twice; a correction needs a credit note and a new number.",
        business_term="BT-1",
    ),
    Entry(
        "AMOUNT_INVALID",
        B,
        "The amount due is negative for an invoice.",
        "Issue a credit note for negative amounts.",
        business_term="BT-115",
    ),
    Entry(
        "FLOW_REJECTED_COMPLETELY",
        B,
        "The invoice passed its checks but the flow is under complete rejection and another invoice failed.",
        "Deposit this invoice again, unchanged, with the other rejected invoices once corrected; leave out any "
        "invoice already integrated.",
    ),
    Entry(
        "DIRECTORY_CHECKS_NOT_RUN",
        B,
        "The platform checks against the directory were not run (no directory given).",
        "Run fluxdepot check with --config to check suppliers, recipients and service codes.",
        severity=Severity.INFO,
    ),
)

CATALOGUE: dict[str, Entry] = {e.code: e for e in _ENTRIES}


def finding(code: str, message: str | None = None, **fields: str | None) -> Finding:
    """Build a ``Finding`` for a catalogued code; ``message`` defaults to the catalogue's text."""
    entry = CATALOGUE[code]
    return Finding(
        code=code,
        message=message or entry.message,
        severity=entry.severity,
        rule=fields.get("rule"),
        business_term=fields.get("business_term") or entry.business_term,
        location=fields.get("location"),
        document=fields.get("document"),
    )


def kind_of(code: str) -> Kind:
    return CATALOGUE[code].kind


def hint_of(code: str) -> str:
    return CATALOGUE[code].hint


def as_markdown() -> str:
    """The catalogue as a Markdown table, for the README."""
    lines = ["| code | kind | severity | term | message | hint |", "|---|---|---|---|---|---|"]
    for e in _ENTRIES:
        lines.append(
            f"| `{e.code}` | {e.kind.value} | {e.severity.value} | {e.business_term or ''} | {e.message} | {e.hint} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    print(as_markdown())
