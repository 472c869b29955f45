"""The engine's vocabulary: syntaxes, channels, flows, invoices and findings, as frozen dataclasses.

Everything here is plain data that crosses process boundaries (the validation pool) and module
boundaries (store, report builder, gateway); it holds no behaviour beyond small derived properties.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from engine.status import FlowEvent, FlowStatus


class Syntax(enum.Enum):
    """Accepted ``syntaxeFlux`` values (DESIGN §5) with their interface code."""

    UBL_INVOICE = "IN_DP_E1_UBL_INVOICE"
    CII_16B = "IN_DP_E1_CII_16B"
    UBL_INVOICE_MIN = "IN_DP_E2_UBL_INVOICE_MIN"
    CII_FACTURX = "IN_DP_E2_CII_FACTURX"
    CII_MIN_16B = "IN_DP_E2_CII_MIN_16B"

    @property
    def interface_code(self) -> str:
        return _INTERFACE_CODES[self]

    @property
    def interface_number(self) -> str:
        """The four digits a flow number carries (``FSO1100A`` → ``1100``)."""
        return self.interface_code[3:7]

    @property
    def family(self) -> DocumentFamily:
        return _FAMILIES[self]

    @classmethod
    def parse(cls, text: str) -> Syntax:
        """Parse a ``syntaxeFlux`` value; raises ``ValueError`` naming the accepted values."""
        try:
            return cls(text.strip())
        except ValueError:
            accepted = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown syntax {text!r}; accepted: {accepted}") from None


class DocumentFamily(enum.Enum):
    """What a document is, as read from its content."""

    UBL = "ubl"
    CII = "cii"
    FACTURX_PDF = "facturx-pdf"


# IN_DP_E2_CII_MIN_16B has no published interface code (domain.md §10.3); FSO1115A is our choice,
# kept next to its neighbours and documented in the README.
_INTERFACE_CODES = {
    Syntax.UBL_INVOICE: "FSO1100A",
    Syntax.CII_16B: "FSO1106A",
    Syntax.UBL_INVOICE_MIN: "FSO1110A",
    Syntax.CII_FACTURX: "FSO1117A",
    Syntax.CII_MIN_16B: "FSO1115A",
}

_FAMILIES = {
    Syntax.UBL_INVOICE: DocumentFamily.UBL,
    Syntax.CII_16B: DocumentFamily.CII,
    Syntax.UBL_INVOICE_MIN: DocumentFamily.UBL,
    Syntax.CII_FACTURX: DocumentFamily.FACTURX_PDF,
    Syntax.CII_MIN_16B: DocumentFamily.CII,
}


class Channel(enum.Enum):
    EDI = "EDI"
    API = "API"
    PORTAL = "PORTAL"


class Kind(enum.Enum):
    TECHNICAL = "technical"
    BUSINESS = "business"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"  # e.g. "directory checks not run"


class RejectionRule(enum.Enum):
    """How an issuer's flow is judged when some invoices fail (DESIGN §4)."""

    COMPLETE = "complete"  # any rejected invoice rejects the whole flow
    PARTIAL = "partial"  # good invoices are integrated, bad ones listed


@dataclass(frozen=True)
class Finding:
    """One error, warning or note in a report. ``code`` is a key of ``engine.catalogue.CATALOGUE``."""

    code: str
    message: str
    severity: Severity = Severity.ERROR
    rule: str | None = None  # e.g. "BR-CO-15", "XSD", "CPP-DUPLICATE"
    business_term: str | None = None  # e.g. "BT-1"
    location: str | None = None  # "document; XPath or line"
    document: str | None = None  # archive member name, or the file name for a single document

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


@dataclass(frozen=True)
class InvoiceFacts:
    """The fields of one invoice the business checks and the report need, read from its XML."""

    document: str  # file or archive member name
    number: str | None
    type_code: str | None  # 380 invoice, 381 credit note, ...
    issue_date: str | None  # ISO yyyy-mm-dd
    currency: str | None
    supplier_id: str | None  # SIRET when the supplier is French (scheme 0009 or legal id), else raw id
    supplier_name: str | None
    buyer_id: str | None
    buyer_name: str | None
    service_code: str | None  # BT-10 buyer reference / Chorus Pro service code
    engagement_number: str | None  # BT-13 purchase order reference (engagement juridique)
    total_without_vat: Decimal | None
    total_with_vat: Decimal | None
    amount_due: Decimal | None
    guideline: str | None = None  # BT-24 specification identifier
    has_attachment: bool = False  # an embedded binary document (PDF) is present


class InvoiceStatus(enum.Enum):
    INTEGRATED = "integrated"
    REJECTED = "rejected"


@dataclass(frozen=True)
class InvoiceOutcome:
    """One invoice's verdict inside a flow."""

    facts: InvoiceFacts
    status: InvoiceStatus
    findings: tuple[Finding, ...] = ()

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)


@dataclass(frozen=True)
class Limits:
    """The resource budget of one flow; the daemon fills it from its config ([limits]).

    Every limit is checked on what an input declares (a header, a count, a declared size) before the
    bytes it describes are read or expanded; a breach is a specific technical finding (README, limits).
    """

    max_flow_bytes: int = 30 * 1024 * 1024
    max_documents: int = 500
    max_member_bytes: int = 30 * 1024 * 1024
    max_unpacked_bytes: int = 120 * 1024 * 1024
    max_compression_ratio: int = 100
    max_archive_members: int = 1000  # entries of any kind read before giving up (directories included)
    # One archive entry's metadata: a tar entry's pax and GNU long-name headers together, a zip central
    # directory entry's name, extra field and comment.
    max_archive_header_bytes: int = 64 * 1024
    max_pdf_objects: int = 100_000  # cross-reference entries (tables and streams) and indirect objects
    max_pdf_stream_bytes: int = 8 * 1024 * 1024  # a PDF's structure streams, each and together
    max_pdf_attachments: int = 20
    max_pdf_attachment_bytes: int = 30 * 1024 * 1024  # each, as declared (or stored when undeclared)
    max_pdf_attachments_total_bytes: int = 60 * 1024 * 1024
    max_xml_bytes: int = 30 * 1024 * 1024  # one XML document, a PDF's embedded XML once decompressed
    max_xml_depth: int = 64  # element nesting; libxml2 refuses past 256 whatever this says
    max_xml_elements: int = 2_000_000  # all the XML documents of one flow together
    validation_timeout_s: float = 60.0


class Ruleset(enum.Enum):
    """The rules a flow's content is judged by (README, rulesets); ``engine.validation.routes`` maps each to
    the artefacts it runs."""

    EN16931 = "en16931"  # the CEN EN 16931 rules, plus the Factur-X profile rules for Factur-X invoices
    EN16931_FR_FLUX2 = "en16931+fr-flux2"  # the same, plus the French e-invoicing reform's "Flux 2" rules

    @classmethod
    def parse(cls, text: str) -> Ruleset:
        """Parse a ruleset name; raises ``ValueError`` naming the accepted ones."""
        try:
            return cls(text.strip())
        except ValueError:
            accepted = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown ruleset {text!r}; accepted: {accepted}") from None


class Keep(enum.Enum):
    """A setting an update leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP
# A depositor's ruleset in an update: one of its own, None for the config's default ([rules] ruleset), or
# KEEP (as it is; the default for a new depositor).
RulesetChoice = Ruleset | None | Keep


@dataclass(frozen=True)
class Rules:
    """Which ruleset judges a flow, and where the downloaded validation artefacts are installed.

    Plain data sent with every check to the validation processes; the daemon fills it from [rules].
    """

    ruleset: Ruleset = Ruleset.EN16931
    artefacts_dir: str | None = None  # None: the default, <venv>/share/fluxdepot/artefacts


@dataclass(frozen=True)
class FlowRecord:
    """A flow as the store holds it."""

    flow_number: str
    file_name: str
    syntax: Syntax
    channel: Channel
    issuer_siret: str
    depositor: str  # "tech:<login>", "user:<login>" or "partner:<code>"
    status: FlowStatus
    deposited_at: datetime
    status_changed_at: datetime
    sha256: str
    size_bytes: int
    tracking_id: str | None = None
    declared_syntax: bool = True  # False when the syntax was detected from the content
    partner_code: str | None = None
    invoice_count: int = 0
    integrated_count: int = 0
    rejected_count: int = 0
    return_flows: tuple[str, ...] = ()

    @property
    def interface_code(self) -> str:
        return self.syntax.interface_code


@dataclass(frozen=True)
class StatusChange:
    """One appended, hash-chained entry of a flow's history."""

    flow_number: str
    seq: int  # 1-based position in the flow's history
    status: FlowStatus
    event: FlowEvent | None  # None for the creating entry (RECEIVED)
    at: datetime
    actor: str
    detail: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class FlowVerdict:
    """What processing decided for a flow, before it is stored."""

    event: FlowEvent  # TECHNICAL_REJECTION, ALL/SOME/NONE_INTEGRATED or SYSTEM_FAILURE
    flow_findings: tuple[Finding, ...] = ()
    invoices: tuple[InvoiceOutcome, ...] = ()
    ruleset_version: str = ""
    detected_syntax: Syntax | None = None
    notes: tuple[str, ...] = field(default=())
