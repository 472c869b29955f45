"""The stylesheets the engine compiles (trimmed output, guarded asserts: ``engine.validation.rules._lean`` and
``engine.validation.absent_paths``) give exactly the findings of the official files run as published.

Every XSLT artefact runs, both ways, on every corpus document of its syntax (UBL or CII, the XML inside the
Factur-X PDFs included) and on every CEN rule-test fragment of that syntax; the hit lists (rule, severity,
kind, location, text, in order) must be equal. The official side is the pinned file compiled untouched.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from lxml import etree

from engine.formats import detect, xmlparse
from engine.model import Limits
from engine.validation import assert_guards, rules
from engine.validation.artefacts import Artefact, location
from tests.corpus import CORPUS

VEFA = "{http://difi.no/xsd/vefa/validator/1.0}"
CII_ROOT = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"


def _documents() -> dict[str, list[tuple[str, bytes]]]:
    """(name, bytes) per syntax: corpus files, the Factur-X XML of the PDFs, the rule-test fragments."""
    found: dict[str, list[tuple[str, bytes]]] = {"ubl": [], "cii": []}
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix not in {".xml", ".pdf"} or "rule-tests" in path.parts:
            continue
        try:
            detected = detect.detect(path.read_bytes(), path.name, Limits())
        except detect.DocumentError:
            continue  # not an invoice (an order, a broken file): no rules to compare
        tag = detected.root.tag
        syntax = "cii" if tag == CII_ROOT else "ubl" if "oasis:names:specification:ubl" in str(tag) else None
        if syntax:
            found[syntax].append((path.name, etree.tostring(detected.tree)))
    for path in sorted((CORPUS / "rule-tests").glob("*.xml")):
        root = xmlparse.parse(path.read_bytes(), path.name).getroot()
        for index, test in enumerate(root.iter(f"{VEFA}test")):
            fragment = next(c for c in test if isinstance(c.tag, str) and not c.tag.startswith(VEFA))
            syntax = "cii" if fragment.tag == CII_ROOT else "ubl"
            found[syntax].append((f"{path.name}#{index}", etree.tostring(fragment)))
    return found


DOCUMENTS = _documents()
SYNTAX = {
    Artefact.EN16931_UBL_XSLT: "ubl",
    Artefact.FR_FLUX2_UBL_XSLT: "ubl",
    Artefact.EN16931_CII_XSLT: "cii",
    Artefact.FX_MINIMUM_XSLT: "cii",
    Artefact.FX_BASIC_WL_XSLT: "cii",
    Artefact.FX_BASIC_XSLT: "cii",
    Artefact.FX_EN16931_XSLT: "cii",
    Artefact.FX_EXTENDED_XSLT: "cii",
    Artefact.FR_FLUX2_CII_XSLT: "cii",
}


@functools.cache
def _official(artefact: Artefact) -> Any:
    compiler = rules._processor().new_xslt30_processor()
    path = location(artefact, None)
    compiler.set_cwd(str(path.parent) + "/")
    return compiler.compile_stylesheet(stylesheet_file=str(path))


def _official_hits(artefact: Artefact, text: str) -> list[rules.RuleHit]:
    svrl = _official(artefact).transform_to_value(xdm_node=rules._processor().parse_xml(xml_text=text))
    return rules._hits(svrl.head, [])


def test_every_xslt_artefact_is_compared() -> None:
    """No stylesheet the engine can run escapes the comparison, and both syntaxes have documents."""
    assert set(SYNTAX) == {a for a in Artefact if a.is_xslt}
    assert len(DOCUMENTS["ubl"]) > 40 and len(DOCUMENTS["cii"]) > 40


@pytest.mark.parametrize("artefact", list(SYNTAX), ids=lambda a: a.name)
def test_engine_stylesheet_gives_the_official_findings(artefact: Artefact) -> None:
    """Same hits, in the same order, from the engine's stylesheet and the official one, on every document;
    and the guards did skip runs on some document (else this would prove nothing about them)."""
    guards = rules._executable(artefact, None).guards
    skipped_somewhere = False
    for name, data in DOCUMENTS[SYNTAX[artefact]]:
        tree = xmlparse.parse(data, name)
        text = etree.tostring(tree, encoding="unicode")
        assert rules.run_schematron(artefact, text, None, tree) == _official_hits(artefact, text), name
        skipped_somewhere |= len(guards.runs_that_may_fail(tree.getroot())) < guards.runs
    assert guards.runs == 0 or skipped_somewhere


def test_guards_count_the_paths_from_the_document_element() -> None:
    """A run may fail only when one of its asserts fails: ``not(P)`` when P selects a node from the document
    element, ``count(P) <= 1`` when it selects two; unions add up; other rules and tests are not guarded."""
    stylesheet = etree.fromstring(
        b"""<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:a="urn:a">
        <xsl:template match="/a:R | /a:S" mode="M1">
          <xsl:choose><xsl:when test="not(a:X/a:Y)"/><xsl:otherwise>0</xsl:otherwise></xsl:choose>
          <xsl:choose><xsl:when test="not(a:Z/@k)"/><xsl:otherwise>0</xsl:otherwise></xsl:choose>
          <xsl:choose><xsl:when test="not(a:X/a:Y[1])"/><xsl:otherwise>not guarded</xsl:otherwise></xsl:choose>
          <xsl:choose><xsl:when test="count((a:P|a:Q)/a:V) &lt;= 1"/><xsl:otherwise>1</xsl:otherwise></xsl:choose>
          <xsl:choose><xsl:when test="not(a:W)"/><xsl:otherwise>1</xsl:otherwise></xsl:choose>
        </xsl:template>
        <xsl:template match="a:R/a:X" mode="M1">
          <xsl:choose><xsl:when test="not(a:Y)"/><xsl:otherwise>deeper rule</xsl:otherwise></xsl:choose>
          <xsl:choose><xsl:when test="not(a:Z)"/><xsl:otherwise>deeper rule</xsl:otherwise></xsl:choose>
        </xsl:template></xsl:stylesheet>"""
    )
    guards = assert_guards.guard(stylesheet)
    assert guards.runs == 2
    assert stylesheet[0].get("name") == assert_guards.PARAMETER and stylesheet[0].get("required") == "yes"

    def runs(xml: bytes) -> set[int]:
        return guards.runs_that_may_fail(etree.fromstring(xml))

    assert runs(b'<a:R xmlns:a="urn:a"><a:Y/><a:X/><a:Z/><a:P><a:V/></a:P></a:R>') == set()
    assert runs(b'<a:R xmlns:a="urn:a"><a:X><a:Y/></a:X></a:R>') == {0}
    assert runs(b'<a:S xmlns:a="urn:a"><a:Z k="1"/></a:S>') == {0}
    assert runs(b'<a:R xmlns:a="urn:a"><a:P><a:V/></a:P><a:Q><a:V/></a:Q></a:R>') == {1}
    assert runs(b'<a:R xmlns:a="urn:a" xmlns:b="urn:b"><b:W/><a:W/></a:R>') == {1}
    assert runs(b'<a:T xmlns:a="urn:a"><a:W/></a:T>') == set()  # the rule does not match this document


def test_a_transform_without_the_parameter_fails() -> None:
    """The guards' parameter is required: without it Saxon refuses to run, nothing is skipped silently."""
    executable = rules._executable(Artefact.EN16931_UBL_XSLT, None).executable
    data = next(d for n, d in DOCUMENTS["ubl"] if "#" not in n)
    executable.clear_parameters()
    with pytest.raises(Exception, match="No value supplied for required parameter fluxdepot-runs"):
        executable.transform_to_value(xdm_node=rules._processor().parse_xml(xml_text=data.decode()))
