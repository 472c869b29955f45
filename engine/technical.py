"""Technical checks of a deposited flow, as pure module-level functions run in the validation pool.

Two stages, matching the statuses (DESIGN §4):

* ``transport_check`` (RECEIVED → PROCESSED_SE_CPP): not empty, size, archive unpacked safely, every
  document well-formed, of a supported syntax, consistent with the declared syntax. Every input is read
  within the flow's resource budget (``engine.model.Limits``), checked before bytes are expanded; the
  XML documents of a flow share one budget of elements (``max_xml_elements``).
* ``content_check`` (IN_PROGRESS): XSD of every document (technical: any error rejects the flow), then
  per invoice the schematrons of the flow's ruleset (``engine.model.Rules``, routes in
  ``engine.validation.routes``: business findings, each with its rule's severity) and the invoice facts
  the directory checks need. The result names the ruleset and every artefact used, with its version
  and sha256 (``ContentResult.ruleset_version``).

Both take the flow as ``source``: the bytes the store kept with a small flow, or the path of its blob
(a big flow's bytes are never sent across processes). They return plain data and never raise for bad
input: every problem is a ``Finding``. When a check cannot run (an artefact missing, unreadable or not
the pinned one, a processor failure) the result carries a ``CHECK_FAILED`` finding, which sends the flow
to WARNING, never INTEGRATED.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from engine.catalogue import finding
from engine.formats import archive, facts, xmlparse
from engine.formats.detect import DETECTED_SYNTAX, NOT_ACCEPTED_PROFILES, Detected, DocumentError, detect
from engine.model import DocumentFamily, Finding, InvoiceFacts, Limits, Rules, Syntax
from engine.validation import rules as schematrons
from engine.validation import xsd
from engine.validation.artefacts import Artefact, ArtefactError
from engine.validation.routes import describe, steps_for

DEFAULT_RULES = Rules()


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
    # The ruleset and each artefact used with its version and sha256 (engine.validation.routes.describe),
    # e.g. "en16931: CEN EN16931-UBL-validation.xslt 1.3.16 sha256:1865...; OASIS UBL Invoice XSD 2.1 sha256:936e..."
    ruleset_version: str


def transport_check(source: str | bytes, file_name: str, declared: Syntax | None, limits: Limits) -> TransportResult:
    """RECEIVED → PROCESSED_SE_CPP checks; raises only ``MemoryError`` (an unexpected error is ``CHECK_FAILED``)."""
    try:
        return _transport(source, file_name, declared, limits)
    except Exception as exc:  # the pool must get data back, whatever happened
        return TransportResult(declared, (), (_check_failed(exc, file_name),))


def content_check(
    source: str | bytes, file_name: str, syntax: Syntax, limits: Limits, rules: Rules = DEFAULT_RULES
) -> ContentResult:
    """IN_PROGRESS checks: XSD, the ruleset's schematrons and facts of every document; raises only
    ``MemoryError``."""
    try:
        return _content(source, file_name, limits, rules)
    except Exception as exc:
        return ContentResult((_check_failed(exc, file_name),), (), describe(rules.ruleset, set()))


def flow_check(
    source: str | bytes, file_name: str, declared: Syntax | None, limits: Limits, rules: Rules = DEFAULT_RULES
) -> tuple[TransportResult, ContentResult | None]:
    """``transport_check``, then ``content_check`` when the flow passed it, in ONE call: the file is
    read and each document parsed once (the worker saves a pool round trip and a parse per flow).
    The results are those the two calls would give; raises only ``MemoryError``."""
    try:
        members = _read_documents(source, file_name, limits)
    except _FlowError as exc:
        return TransportResult(declared, (), (exc.finding,)), None
    except Exception as exc:
        return TransportResult(declared, (), (_check_failed(exc, file_name),)), None
    try:
        transport, detected = _transport_of(members, declared, limits)
    except Exception as exc:
        return TransportResult(declared, (), (_check_failed(exc, file_name),)), None
    if transport.rejected:
        return transport, None
    try:
        return transport, _content_of(members, detected, rules)
    except Exception as exc:
        return transport, ContentResult((_check_failed(exc, file_name),), (), describe(rules.ruleset, set()))


# Transport -------------------------------------------------------------------------------------------


class _FlowError(Exception):
    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


def _transport(source: str | bytes, file_name: str, declared: Syntax | None, limits: Limits) -> TransportResult:
    try:
        members = _read_documents(source, file_name, limits)
    except _FlowError as exc:
        return TransportResult(declared, (), (exc.finding,))
    return _transport_of(members, declared, limits)[0]


def _transport_of(
    members: tuple[archive.Member, ...], declared: Syntax | None, limits: Limits
) -> tuple[TransportResult, list[Detected | DocumentError]]:
    """The transport verdict on read documents, and each member's detection (for ``_content_of``)."""
    names = tuple(m.name for m in members)
    outcomes = _detect_all(members, limits)
    findings = [o.finding for o in outcomes if isinstance(o, DocumentError)]
    detected = [o for o in outcomes if isinstance(o, Detected)]
    families = {d.family for d in detected}
    if len(families) > 1:
        found = ", ".join(sorted(f.value for f in families))
        findings.append(finding("SYNTAX_MIXED", f"The archive mixes documents of several syntaxes ({found})."))
    for document in detected:
        findings.extend(_document_checks(document, declared))
    syntax = declared
    if syntax is None and len(families) == 1:
        syntax = DETECTED_SYNTAX[next(iter(families))]
    return TransportResult(syntax, names, tuple(findings)), outcomes


def _detect_all(members: tuple[archive.Member, ...], limits: Limits) -> list[Detected | DocumentError]:
    """Each member detected, in order; the XML documents of the flow share one ``max_xml_elements``."""
    outcomes: list[Detected | DocumentError] = []
    remaining_elements = limits.max_xml_elements
    for member in members:
        try:
            document = detect(
                member.data, member.name, dataclasses.replace(limits, max_xml_elements=remaining_elements)
            )
        except DocumentError as exc:
            outcomes.append(exc)
            continue
        remaining_elements -= xmlparse.element_bound(document.xml)
        outcomes.append(document)
    return outcomes


def _document_checks(document: Detected, declared: Syntax | None) -> list[Finding]:
    """Declared syntax against content, refused Factur-X profiles, the E2 attachment."""
    problems = []
    if declared is not None and declared.family is not document.family:
        problems.append(
            finding(
                "SYNTAX_MISMATCH",
                f"Declared {declared.value} but the document is {document.family.value}.",
                document=document.name,
            )
        )
    if document.profile in NOT_ACCEPTED_PROFILES:
        problems.append(
            finding(
                "FACTURX_PROFILE_NOT_ACCEPTED",
                f"The Factur-X profile {document.guideline} is not an EN 16931 invoice.",
                location="ExchangedDocumentContext/GuidelineSpecifiedDocumentContextParameter/ID",
                document=document.name,
            )
        )
    needs_attachment = declared in _E2_WITH_ATTACHMENT and declared.family is document.family
    if needs_attachment and not facts.has_attachment(document.root, document.family):
        problems.append(finding("ATTACHMENT_MISSING", document=document.name))
    return problems


_E2_WITH_ATTACHMENT = frozenset({Syntax.UBL_INVOICE_MIN, Syntax.CII_MIN_16B})


def _read_documents(source: str | bytes, file_name: str, limits: Limits) -> tuple[archive.Member, ...]:
    """The flow's documents (from its bytes or its file): the archive members, or the flow itself;
    raises ``_FlowError``."""
    if isinstance(source, bytes):
        size_bytes, head = len(source), source[:512]
    else:
        size_bytes = Path(source).stat().st_size
        with open(source, "rb") as handle:
            head = handle.read(512)
    if size_bytes == 0:
        raise _FlowError(finding("FILE_EMPTY", document=file_name))
    if size_bytes > limits.max_flow_bytes:
        raise _FlowError(finding("FILE_TOO_LARGE", document=file_name))
    kind = archive.archive_kind(head)
    if kind is None:
        if isinstance(source, bytes):
            return (archive.Member(file_name, source),)
        with open(source, "rb") as handle:
            return (archive.Member(file_name, handle.read(limits.max_flow_bytes + 1)),)
    try:
        return archive.unpack(source, kind, limits, size_bytes)
    except archive.ArchiveError as exc:
        raise _FlowError(exc.finding) from None


# Content ---------------------------------------------------------------------------------------------


def _content(source: str | bytes, file_name: str, limits: Limits, rules: Rules) -> ContentResult:
    try:
        members = _read_documents(source, file_name, limits)
    except _FlowError as exc:
        return ContentResult((exc.finding,), (), describe(rules.ruleset, set()))
    return _content_of(members, _detect_all(members, limits), rules)


def _content_of(
    members: tuple[archive.Member, ...], outcomes: list[Detected | DocumentError], rules: Rules
) -> ContentResult:
    flow_findings: list[Finding] = []
    documents: list[DocumentResult] = []
    used: set[Artefact] = set()
    for member, detected in zip(members, outcomes, strict=True):
        if isinstance(detected, DocumentError):
            flow_findings.append(detected.finding)
            documents.append(DocumentResult(facts.empty_facts(member.name), ()))
            continue
        technical, business = _validate(detected, rules, used)
        flow_findings.extend(technical)
        documents.append(DocumentResult(_facts(detected), tuple(business)))
    return ContentResult(tuple(flow_findings), tuple(documents), describe(rules.ruleset, used))


def _validate(document: Detected, rules: Rules, used: set[Artefact]) -> tuple[list[Finding], list[Finding]]:
    """(technical, business) findings of one document along its route; adds the artefacts run to ``used``."""
    technical: list[Finding] = []
    business: list[Finding] = []
    text: str | None = None
    where = rules.artefacts_dir
    for step in steps_for(document, rules.ruleset):
        try:
            if step.xsd is not None:
                technical.extend(xsd.validate(document.tree, step.xsd, document.name, where))
                used.add(step.xsd)
            if step.schematron is not None:
                text = text if text is not None else _xml_text(document)
                hits = schematrons.run_schematron(step.schematron, text, where, document.tree)
                used.add(step.schematron)
                if step.profile_only:
                    hits = schematrons.profile_rules_only(hits)
                if step.not_applied:
                    hits = [h for h in hits if h.rule not in step.not_applied]
                business.extend(schematrons.to_findings(hits, document.name, step.origin))
        except (ArtefactError, schematrons.RulesError, etree.Error) as exc:
            technical.append(_check_failed(exc, document.name))
    return technical, business


def _xml_text(document: Detected) -> str:
    """The document as text for Saxon: the original bytes when UTF-8, else lxml's serialisation."""
    encoding = (document.tree.docinfo.encoding or "UTF-8").upper().replace("_", "-")
    if encoding in {"UTF-8", "UTF8"}:
        try:
            return document.xml.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    return str(etree.tostring(document.tree, encoding="unicode"))


def _facts(document: Detected) -> InvoiceFacts:
    family = DocumentFamily.UBL if document.family is DocumentFamily.UBL else DocumentFamily.CII
    read = facts.read_facts(document.root, family, document.name)
    if document.family is DocumentFamily.FACTURX_PDF:
        read = dataclasses.replace(read, has_attachment=True)  # the PDF is the invoice image
    return read


def _check_failed(exc: BaseException, document: str) -> Finding:
    """The finding for a check that could not run; a ``MemoryError`` goes on up instead: the pool reports
    it as ``CHECK_OUT_OF_MEMORY`` (the process, not the file, was at fault)."""
    if isinstance(exc, MemoryError):
        raise exc
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return finding(
        "CHECK_FAILED",
        f"A check could not run ({type(exc).__name__}{': ' + detail if detail else ''}).",
        document=document,
    )


_WARM_SCHEMAS = (Artefact.UBL_INVOICE_XSD, Artefact.UBL_CREDIT_NOTE_XSD, Artefact.CII_D22B_XSD, Artefact.FX_EN16931_XSD)
_WARM_STYLESHEETS = (Artefact.EN16931_UBL_XSLT, Artefact.EN16931_CII_XSLT, Artefact.FX_EN16931_XSLT)


def warm_up(rules: Rules = DEFAULT_RULES) -> None:
    """Load the schemas and compile the stylesheets most flows need (a pool process calls this at start).

    An artefact that cannot be loaded is skipped: the flows that need it end in WARNING with
    ``CHECK_FAILED``, and the daemon refuses to start without its artefacts (``require_artefacts``).
    """
    for schema in _WARM_SCHEMAS:
        with contextlib.suppress(ArtefactError):
            xsd.schema(schema, rules.artefacts_dir)
    for stylesheet in _WARM_STYLESHEETS:
        with contextlib.suppress(ArtefactError, schematrons.RulesError):
            schematrons.warm_up(stylesheet, artefacts_dir=rules.artefacts_dir)
