"""The CEN EN 16931 rule unit tests (``corpus/rule-tests``) hold with the CEN XSLTs the engine runs.

Each ``<test>`` fragment runs through the EN 16931 schematron only (no XSD: fragments are deliberately
incomplete). ``<error>RULE</error>`` must fire as an error, ``<warning>RULE</warning>`` as a warning;
``<success>RULE</success>`` must not fire. UBL fragments use the CEN UBL XSLT, CII fragments the CEN CII
XSLT (both v1.3.16, engine/validation/routes.py).
"""

from __future__ import annotations

import pytest
from lxml import etree

from engine.formats.xmlparse import safe_parser
from engine.validation import rules
from engine.validation.artefacts import Artefact
from tests.corpus import CORPUS

RULE_TESTS = CORPUS / "rule-tests"
VEFA = "{http://difi.no/xsd/vefa/validator/1.0}"


def _cases() -> list[tuple[str, int, etree._Element]]:
    cases = []
    for path in sorted(RULE_TESTS.glob("*.xml")):
        root = etree.parse(str(path), parser=safe_parser()).getroot()
        for index, test in enumerate(root.iter(f"{VEFA}test")):
            cases.append((path.name, index, test))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("file_name", "index", "test"), CASES, ids=[f"{c[0]}#{c[1]}" for c in CASES])
def test_rule_test_case(file_name: str, index: int, test: etree._Element) -> None:
    """Each asserted rule fires (error) or stays silent (success) on its fragment."""
    fragment = next(child for child in test if isinstance(child.tag, str) and not child.tag.startswith(VEFA))
    is_cii = "CrossIndustryInvoice" in fragment.tag
    artefact = Artefact.EN16931_CII_XSLT if is_cii else Artefact.EN16931_UBL_XSLT
    hits = rules.run_on_fragment(artefact, etree.tostring(fragment))
    fired = {h.rule for h in hits if h.is_error}
    warned = {h.rule for h in hits if not h.is_error}
    assertion = test.find(f"{VEFA}assert")
    assert assertion is not None
    for expected in assertion.findall(f"{VEFA}error"):
        assert expected.text in fired, f"{expected.text} should fire; fired: {sorted(filter(None, fired))}"
    for expected in assertion.findall(f"{VEFA}warning"):
        assert expected.text in warned, f"{expected.text} should warn; warned: {sorted(filter(None, warned))}"
    for expected in assertion.findall(f"{VEFA}success"):
        assert expected.text not in fired | warned, f"{expected.text} should not fire"


def test_both_syntaxes_are_covered() -> None:
    """The rule tests hold fragments of both syntaxes, so each CEN XSLT is exercised."""
    tags = {next(c for c in t if isinstance(c.tag, str) and not c.tag.startswith(VEFA)).tag for _, _, t in CASES}
    assert any("CrossIndustryInvoice" in tag for tag in tags)
    assert any("Invoice-2" in tag or "CreditNote-2" in tag for tag in tags)
