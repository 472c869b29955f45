"""Every corpus invoice gets the verdict MANIFEST.tsv records, through transport_check + content_check.

Valid means: no error-severity finding in the transport result, the content result's flow findings or any
document's findings. The manifest was measured with the official artefacts (CEN EN 16931 UBL and CII
XSLT v1.3.16, the Factur-X 1.09 profiles); the ``en16931`` ruleset runs the same ones, so the only files
where our verdict differs are the documented policy refusals, still checked for their reason.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from engine.model import Finding, Limits
from engine.technical import content_check, transport_check
from engine.validation.artefacts import Artefact, location
from tests.corpus import CORPUS

FOLDERS = ("ubl", "cii", "pdf", "other")

# Our policy (engine/formats/detect.py, catalogue FACTURX_PROFILE_NOT_ACCEPTED): Factur-X MINIMUM and
# BASIC WL are not EN 16931 invoices and are refused, although their profile schematron passes.
POLICY_REFUSED = {
    "cii/akretion__factur-x-basicwl.xml",
    "cii/akretion__factur-x-minimum.xml",
    "pdf/mustang__validAvoir_FR_type380_BASICWL.pdf",
}

_NAMED_RULES = re.compile(r"(?:fatal|schematron): ([A-Za-z0-9,+ -]+)")
_NAMED_WARNINGS = re.compile(r"\(warnings: ([A-Za-z0-9,+ -]+)\)")


def _manifest() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [r for r in rows if r["path"].split("/")[0] in FOLDERS]


ROWS = _manifest()


def _findings(path: Path) -> list[Finding]:
    limits = Limits()
    transport = transport_check(str(path), path.name, None, limits)
    findings = list(transport.findings)
    if not transport.rejected:
        assert transport.syntax is not None
        content = content_check(str(path), path.name, transport.syntax, limits)
        findings += list(content.flow_findings)
        findings += [f for document in content.documents for f in document.findings]
    return findings


@cache
def _rule_ids(ubl: bool) -> frozenset[str]:
    """The assert ids of the schematrons that judge UBL (CEN UBL) or CII (CEN CII, Factur-X profiles).

    A rule the manifest names that none of them holds could not fire; every named rule is held today,
    the filter only keeps the test honest if an artefact drops one.
    """
    ids: set[str] = {"FX-NOT-IN-PROFILE"}
    for artefact in Artefact:
        if artefact.is_xslt and not artefact.name.startswith("FR_") and artefact.name.endswith("UBL_XSLT") == ubl:
            text = location(artefact).read_text(encoding="utf-8")
            ids.update(re.findall(r'name="id">([^<]+)<', text))
    return frozenset(ids)


def _listed(text: str, pattern: re.Pattern[str]) -> list[str]:
    rules = []
    for listed in pattern.findall(text):
        rules += [r.strip() for r in listed.split(",") if r.strip() and not r.strip().startswith("+")]
    return rules


def test_manifest_covers_the_corpus() -> None:
    """The test runs over every invoice file of the corpus folders, and the exclusion list stays real."""
    on_disk = {str(p.relative_to(CORPUS)) for folder in FOLDERS for p in (CORPUS / folder).iterdir()}
    assert on_disk == {r["path"] for r in ROWS}
    assert on_disk >= POLICY_REFUSED


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_corpus_verdict(row: dict[str, str]) -> None:
    """The verdict agrees with the manifest, the named EN 16931 / Factur-X rules are among the errors,
    the named warnings among the warnings (never errors), and the policy refusals fail for that reason."""
    findings = _findings(CORPUS / row["path"])
    errors = [f for f in findings if f.is_error]
    codes = {f.code for f in errors}
    rules = {f.rule for f in errors}
    if row["path"] in POLICY_REFUSED:
        assert codes == {"FACTURX_PROFILE_NOT_ACCEPTED"}
        return
    verdict = "invalid" if errors else "valid"
    assert verdict == row["expected"], sorted((f.code, f.rule, f.message[:80]) for f in errors)
    known = _rule_ids(row["path"].startswith("ubl/"))
    if row["expected"] == "invalid" and "FACTURX_PROFILE_NOT_ACCEPTED" not in codes:
        for rule in _listed(row["rule_or_reason"], _NAMED_RULES):
            if rule in known:
                assert rule in rules, f"{rule} expected among {sorted(filter(None, rules))}"
    warnings = {f.rule for f in findings if not f.is_error}
    for rule in _listed(row["rule_or_reason"], _NAMED_WARNINGS):
        assert rule in warnings, f"warning {rule} expected among {sorted(filter(None, warnings))}"


def test_the_cii_route_fixes_what_the_issue_found() -> None:
    """On the issue's own examples: CII-SR-465 (one BT-41) is a warning and the XRechnung PDF is valid;
    BR-CL-25 (endpoint scheme) and CII-DT-031 fire as errors, where the old route could not see them."""
    xrechnung = _findings(CORPUS / "pdf/zcorpus__XRECHNUNG_Einfach.pdf")
    assert [(f.code, f.rule) for f in xrechnung] == [("EN16931_WARNING", "CII-SR-465")]
    address = {(f.code, f.rule) for f in _findings(CORPUS / "pdf/zcorpus__EN16931_ElektronischeAdresse.pdf")}
    assert ("EN16931_RULE", "BR-CL-25") in address
    profile = {(f.code, f.rule) for f in _findings(CORPUS / "cii/mustang__invalidV2Profile.xml") if f.is_error}
    assert profile == {("EN16931_RULE", "CII-DT-031")}


def test_facts_are_read_from_ubl_cii_and_facturx() -> None:
    """The invoice facts (BT-1, dates, parties, totals) come out of each syntax, typed."""
    expected = {
        "ubl/cen__ubl-tc434-example1.xml": ("12115118", "2015-01-09", Decimal("250.33"), False),
        "cii/cen__CII_example1.xml": ("12115118", "2015-01-09", Decimal("250.33"), False),
        "pdf/mustang__EN16931_Einfach.pdf": ("471102", "2024-11-15", Decimal("529.87"), True),
    }
    for relative, (number, issued, due, attached) in expected.items():
        path = CORPUS / relative
        transport = transport_check(str(path), path.name, None, Limits())
        assert transport.syntax is not None
        facts = content_check(str(path), path.name, transport.syntax, Limits()).documents[0].facts
        assert (facts.number, facts.issue_date, facts.amount_due, facts.has_attachment) == (
            number,
            issued,
            due,
            attached,
        )
        assert facts.document == path.name
        assert facts.supplier_id and facts.supplier_name and facts.currency == "EUR"
