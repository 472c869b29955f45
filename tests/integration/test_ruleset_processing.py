"""The ruleset in the daemon's own processing: real store, real validation processes, real artefacts.

A warning-only invoice integrates with its warning in the stored report; a BR-CL-25 failure rejects; a
flow judged while an artefact is missing ends in WARNING with CHECK_FAILED, never integrated; the
``en16931+fr-flux2`` ruleset adds the French rules and the stored report names it and its artefacts.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.model import Rules, Ruleset
from engine.processing import FlowProcessor
from engine.status import FlowStatus
from engine.validation.artefacts import Artefact
from tests import factory
from tests.harness import Harness, now
from tests.unit.test_rulesets import _with_bad_endpoint_scheme, _with_seller_contact

BOTH_WALKS = True  # each test twice: FlowProcessor and the flows' pump (tests/conftest.py)


def _judging_with(harness: Harness, rules: Rules) -> Harness:
    processor = FlowProcessor(
        harness.store, harness.blobs, harness.limits, harness.pool.run, clock=now, actor="worker:test", rules=rules
    )
    return replace(harness, processor=processor)


async def test_a_warning_only_invoice_integrates_with_its_warning(harness: Harness) -> None:
    """CEN's warning CII-SR-465 does not reject: the flow integrates and its report lists the warning; the
    stored ruleset_version names the CEN CII XSLT with its sha256."""
    content = _with_seller_contact(factory.cii_invoice(factory.integrating("FA-2026-0911")))
    flow = await harness.deposit_and_process("warned.xml", content)
    assert flow.status is FlowStatus.INTEGRATED
    report = await harness.report(flow.flow_number)
    (invoice,) = report["invoices"]
    assert invoice["errors"] == []
    assert [(w["code"], w["rule"]) for w in invoice["warnings"]] == [("EN16931_WARNING", "CII-SR-465")]
    assert report["ruleset_version"].startswith("en16931: ")
    assert Artefact.EN16931_CII_XSLT.describe() in report["ruleset_version"]


async def test_a_br_cl_25_failure_rejects(harness: Harness) -> None:
    """An electronic address scheme outside the code list rejects the invoice (BR-CL-25, business)."""
    content = _with_bad_endpoint_scheme(factory.cii_invoice(factory.integrating("FA-2026-0912")))
    flow = await harness.deposit_and_process("scheme.xml", content)
    assert flow.status is FlowStatus.REJECTED
    report = await harness.report(flow.flow_number)
    assert [(e["code"], e["rule"]) for e in report["invoices"][0]["errors"]] == [("EN16931_RULE", "BR-CL-25")]


async def test_a_missing_artefact_ends_the_flow_in_warning(harness: Harness, tmp_path: Path) -> None:
    """Judged with an empty artefacts folder, a valid CII invoice is not integrated: WARNING, CHECK_FAILED
    naming the CEN CII XSLT."""
    (tmp_path / "empty").mkdir()
    judging = _judging_with(harness, Rules(artefacts_dir=str(tmp_path / "empty")))
    flow = await judging.deposit_and_process("fine.xml", factory.cii_invoice(factory.integrating("FA-2026-0913")))
    assert flow.status is FlowStatus.WARNING
    report = await judging.report(flow.flow_number)
    (failed,) = [e for e in report["errors"] if e["code"] == "CHECK_FAILED"]
    assert "EN16931-CII-validation.xslt" in failed["message"]


async def test_the_flux2_ruleset_judges_and_is_named(harness: Harness) -> None:
    """Under en16931+fr-flux2 the factory's invoice (no PMT/PMD/AAB notes, no framework BT-23) is rejected
    with the French rules' codes, and the stored report names the ruleset and the Flux 2 XSLT."""
    judging = _judging_with(harness, Rules(Ruleset.EN16931_FR_FLUX2))
    flow = await judging.deposit_and_process("fr.xml", factory.ubl_invoice(factory.integrating("FA-2026-0914")))
    assert flow.status is FlowStatus.REJECTED
    report = await judging.report(flow.flow_number)
    codes = {e["code"] for e in report["invoices"][0]["errors"]}
    assert {"BR_FR_05", "BR_FR_08"} <= codes
    assert report["ruleset_version"].startswith("en16931+fr-flux2: ")
    assert Artefact.FR_FLUX2_UBL_XSLT.describe() in report["ruleset_version"]
