"""Technical checks of a deposited flow, as pure module-level functions run in the validation pool.

Two stages, matching the statuses (DESIGN §4):

* ``transport_check`` (RECEIVED → PROCESSED_SE_CPP): not empty, size, archive unpacked safely, every
  document well-formed, of a supported syntax, consistent with the declared syntax.
* ``content_check`` (IN_PROGRESS): XSD of every document (technical: any error rejects the flow), then
  per invoice the EN 16931 rules and the Factur-X profile rules (business findings) and the invoice facts
  the directory checks need.

Both read the blob from ``path`` (never passed as bytes across processes), return plain data and never
raise for bad input: every problem is a ``Finding``. When a check cannot run (missing artefact, processor
failure) the result carries a ``CHECK_FAILED`` finding, which sends the flow to WARNING, never INTEGRATED.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Finding, InvoiceFacts, Limits, Syntax


@dataclass(frozen=True)
class TransportResult:
    syntax: Syntax | None  # declared, or detected from the content; None when nothing could be read
    documents: tuple[str, ...]  # names of the documents found (the file name for a single document)
    findings: tuple[Finding, ...]  # any error-severity finding → TECHNICAL_REJECTION

    @property
    def rejected(self) -> bool:
        return any(f.is_error for f in self.findings)


@dataclass(frozen=True)
class DocumentResult:
    facts: InvoiceFacts
    findings: tuple[Finding, ...]  # EN 16931 and Factur-X profile findings (business, per invoice)


@dataclass(frozen=True)
class ContentResult:
    flow_findings: tuple[Finding, ...]  # technical errors (XSD, CHECK_FAILED ...)
    documents: tuple[DocumentResult, ...]
    ruleset_version: str  # e.g. "EN16931 1.3.16; Factur-X 1.09.2; UBL 2.1 XSD"


def transport_check(path: str, file_name: str, declared: Syntax | None, limits: Limits) -> TransportResult:
    raise NotImplementedError


def content_check(path: str, file_name: str, syntax: Syntax, limits: Limits) -> ContentResult:
    raise NotImplementedError
