"""Deposit → processing → verdict → report, on a real SQLite store, blob folder and validation pool."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.directory import DirectoryData, Partner
from engine.errors import ChecksumMismatch, FlowTooLarge, InvalidDepositRequest
from engine.model import Channel, Limits, RejectionRule, Syntax
from engine.status import FlowStatus
from tests import factory
from tests.harness import DEMO_PROVIDER_SIRET, DEMO_SUPPLIER_SIRET, Harness

BOTH_WALKS = True  # each test twice: FlowProcessor and the flows' pump (tests/conftest.py)

DEMO_INVOICES = Path(__file__).resolve().parents[2] / "config" / "demo" / "invoices"

# Each demo invoice in rejected/ fails exactly one Chorus Pro check (outside scripts rely on the folders).
EXPECTED_REJECTIONS = {
    "unknown_supplier.xml": "SUPPLIER_UNKNOWN",
    "supplier_not_issuer.xml": "SUPPLIER_NOT_ISSUER",
    "buyer_siret_invalid.xml": "BUYER_SIRET_INVALID",
    "unknown_buyer.xml": "BUYER_UNKNOWN",
    "inactive_buyer.xml": "BUYER_INACTIVE",
    "service_code_missing.xml": "SERVICE_CODE_REQUIRED",
    "service_code_unknown.xml": "SERVICE_CODE_UNKNOWN",
    "service_code_inactive.xml": "SERVICE_CODE_INACTIVE",
    "engagement_missing.xml": "ENGAGEMENT_NUMBER_REQUIRED",
    "invoice_number_too_long.xml": "INVOICE_NUMBER_TOO_LONG",
    "duplicate_in_flow.zip": "DUPLICATE_IN_FLOW",
}


def error_codes(report: dict[str, Any]) -> set[str]:
    codes = {e["code"] for e in report["errors"]}
    for invoice in report["invoices"]:
        codes.update(e["code"] for e in invoice["errors"])
    return codes


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


STORAGE = pytest.mark.parametrize("blob_file", [False, True], ids=["bytes-in-store", "blob-file"])


@STORAGE
@pytest.mark.parametrize("path", sorted((DEMO_INVOICES / "ok").iterdir()), ids=lambda p: p.name)
async def test_demo_ok_invoices_integrate(harness: Harness, path: Path, blob_file: bool) -> None:
    """Every demo invoice in ok/ (UBL, CII, Factur-X) integrates under the demo directory, whether its
    bytes are kept in the store or in a blob file."""
    if blob_file:
        harness = harness.storing_blob_files()
    flow = await harness.deposit_and_process(path.name, path.read_bytes())
    report = await harness.report(flow.flow_number)
    assert flow.status is FlowStatus.INTEGRATED, error_codes(report)
    assert flow.invoice_count == flow.integrated_count == 1
    assert [h["status"] for h in report["history"]] == [
        "RECEIVED",
        "PROCESSED_SE_CPP",
        "WAITING_FOR_PROCESSING",
        "IN_PROGRESS",
        "INTEGRATED",
    ]
    assert report["next_action"]["code"] == "NONE"


@STORAGE
@pytest.mark.parametrize("name", sorted(EXPECTED_REJECTIONS))
async def test_demo_rejected_invoices_fail_their_check(harness: Harness, name: str, blob_file: bool) -> None:
    """Every demo invoice in rejected/ is rejected with the Chorus Pro check it was built to fail, whether
    its bytes are kept in the store or in a blob file."""
    if blob_file:
        harness = harness.storing_blob_files()
    flow = await harness.deposit_and_process(name, (DEMO_INVOICES / "rejected" / name).read_bytes())
    report = await harness.report(flow.flow_number)
    assert EXPECTED_REJECTIONS[name] in error_codes(report)
    assert flow.status in (FlowStatus.REJECTED, FlowStatus.PARTIALLY_INTEGRATED)
    assert flow.rejected_count >= 1


async def test_duplicate_of_an_integrated_invoice_names_the_earlier_flow(harness: Harness) -> None:
    """The same bytes deposited twice are two flows; the second is rejected as a duplicate of the first."""
    content = factory.ubl_invoice(factory.integrating("DUP-0001"))
    first = await harness.deposit_and_process("a.xml", content)
    second = await harness.deposit_and_process("a.xml", content)
    assert first.flow_number != second.flow_number
    assert first.status is FlowStatus.INTEGRATED
    assert second.status is FlowStatus.REJECTED
    report = await harness.report(second.flow_number)
    (error,) = [e for e in report["invoices"][0]["errors"] if e["code"] == "DUPLICATE_INVOICE"]
    assert first.flow_number in error["message"]


async def test_partial_rejection_integrates_the_good_invoices(harness: Harness) -> None:
    """An API flow with one good and one bad invoice ends PARTIALLY_INTEGRATED, listing what to re-deposit."""
    bad = replace(factory.integrating("PART-0002"), service_code="SERV-INCONNU")
    content = zip_of(
        {"good.xml": factory.ubl_invoice(factory.integrating("PART-0001")), "bad.xml": factory.ubl_invoice(bad)}
    )
    flow = await harness.deposit_and_process("flow.zip", content)
    assert flow.status is FlowStatus.PARTIALLY_INTEGRATED
    assert (flow.integrated_count, flow.rejected_count) == (1, 1)
    report = await harness.report(flow.flow_number)
    assert report["next_action"]["code"] == "REDEPOSIT_INVOICES"


async def test_complete_rejection_rule_of_an_edi_partner(harness: Harness) -> None:
    """Under a partner's complete-rejection rule, one bad invoice rejects the whole flow."""
    await harness.store.import_directory(
        DirectoryData(
            partners=(Partner("BBB002", DEMO_PROVIDER_SIRET, rules=((Syntax.UBL_INVOICE, RejectionRule.COMPLETE),)),)
        )
    )
    bad = replace(factory.integrating("COMP-0002"), service_code=None)
    content = zip_of(
        {"good.xml": factory.ubl_invoice(factory.integrating("COMP-0001")), "bad.xml": factory.ubl_invoice(bad)}
    )
    flow = await harness.deposit_and_process(
        "flow.zip",
        content,
        channel=Channel.EDI,
        depositor="partner:BBB002",
        partner_code="BBB002",
        issuer=DEMO_PROVIDER_SIRET,
        syntax="IN_DP_E1_UBL_INVOICE",
    )
    assert flow.flow_number.startswith("BBB0021100")
    assert flow.status is FlowStatus.REJECTED
    report = await harness.report(flow.flow_number)
    assert "FLOW_REJECTED_COMPLETELY" in {w["code"] for i in report["invoices"] for w in i["errors"] + i["warnings"]}
    assert report["next_action"]["code"] == "REDEPOSIT_FLOW"


async def test_provider_deposits_for_another_supplier(harness: Harness) -> None:
    """An invoicing provider's flow may carry invoices of other suppliers (no SUPPLIER_NOT_ISSUER)."""
    spec = replace(factory.integrating("PROV-0001"), supplier=factory.DEMO_SUPPLIER_2)
    flow = await harness.deposit_and_process("p.xml", factory.ubl_invoice(spec), issuer=DEMO_PROVIDER_SIRET)
    assert flow.status is FlowStatus.INTEGRATED


async def test_technical_rejection_of_an_empty_file(harness: Harness) -> None:
    """A 0-byte deposit gets a flow number, then is rejected at transport level with FILE_EMPTY."""
    flow = await harness.deposit_and_process("empty.xml", b"")
    assert flow.status is FlowStatus.REJECTED
    report = await harness.report(flow.flow_number)
    assert {e["code"] for e in report["errors"]} == {"FILE_EMPTY"}
    assert [h["status"] for h in report["history"]] == ["RECEIVED", "REJECTED"]


async def test_declared_syntax_mismatch_is_a_technical_rejection(harness: Harness) -> None:
    """A UBL file declared as CII is rejected with SYNTAX_MISMATCH."""
    flow = await harness.deposit_and_process(
        "x.xml", factory.ubl_invoice(factory.integrating("MIS-1")), syntax="IN_DP_E1_CII_16B"
    )
    assert flow.status is FlowStatus.REJECTED
    assert "SYNTAX_MISMATCH" in error_codes(await harness.report(flow.flow_number))


async def test_a_check_that_times_out_ends_in_warning_not_integrated(harness: Harness) -> None:
    """When a check cannot finish, the flow goes to WARNING with CHECK_TIMEOUT, never INTEGRATED."""
    slow = harness.with_limits(Limits(validation_timeout_s=0.0001))
    flow = await slow.deposit_and_process("t.xml", factory.ubl_invoice(factory.integrating("TIME-1")))
    assert flow.status is FlowStatus.WARNING
    report = await harness.report(flow.flow_number)
    assert "CHECK_TIMEOUT" in error_codes(report)
    assert report["next_action"]["code"] == "REDEPOSIT_FLOW"


async def test_tracking_id_makes_deposit_idempotent(harness: Harness) -> None:
    """A retry with the same tracking id returns the original flow instead of creating another."""
    content = factory.ubl_invoice(factory.integrating("TRK-1"))
    first = await harness.deposit("a.xml", content, tracking_id="client-42")
    again = await harness.deposit("a.xml", content, tracking_id="client-42")
    assert not first.already_deposited and again.already_deposited
    assert again.flow.flow_number == first.flow.flow_number
    other = await harness.deposit("a.xml", content, tracking_id="client-42", depositor="tech:someone-else")
    assert other.flow.flow_number != first.flow.flow_number  # idempotency is per depositor


async def test_door_checks_refuse_bad_requests_and_create_nothing(harness: Harness) -> None:
    """Over-size content, bad fields and a wrong sha256 are refused before any flow exists."""
    small = harness.with_limits(Limits(max_flow_bytes=1000))
    with pytest.raises(FlowTooLarge, match="maximum flow size is 1000 bytes"):
        await small.deposit("big.xml", b"x" * 1001)
    with pytest.raises(InvalidDepositRequest, match="file_name"):
        await harness.deposit("../etc/passwd", b"<a/>")
    with pytest.raises(InvalidDepositRequest, match="issuer_siret"):
        await harness.deposit("a.xml", b"<a/>", issuer="123")
    with pytest.raises(InvalidDepositRequest, match="syntax"):
        await harness.deposit("a.xml", b"<a/>", syntax="IN_DP_E9_NOPE")
    with pytest.raises(ChecksumMismatch):
        await harness.deposit("a.xml", b"<a/>", sha256="0" * 64)
    assert await harness.store.all_flow_numbers() == []


async def test_flow_numbers_follow_the_design(harness: Harness) -> None:
    """API deposits are numbered CPP001 + interface number + 15-digit sequence; syntax detected if absent."""
    cii = await harness.deposit("c.xml", factory.cii_invoice(factory.integrating("NUM-1")))
    ubl = await harness.deposit(
        "u.xml", factory.ubl_invoice(factory.integrating("NUM-2")), syntax="IN_DP_E1_UBL_INVOICE"
    )
    assert cii.flow.flow_number.startswith("CPP0011106") and len(cii.flow.flow_number) == 25
    assert cii.flow.syntax is Syntax.CII_16B and not cii.flow.declared_syntax
    assert ubl.flow.flow_number.startswith("CPP0011100")
    assert int(ubl.flow.flow_number[10:]) > int(cii.flow.flow_number[10:])


async def test_amounts_are_reported_per_invoice(harness: Harness) -> None:
    """The report lists each invoice with its number, parties and amount."""
    spec = replace(factory.integrating("AMT-1"), net_amount=Decimal("250.00"))
    flow = await harness.deposit_and_process("a.xml", factory.ubl_invoice(spec))
    (invoice,) = (await harness.report(flow.flow_number))["invoices"]
    assert invoice["number"] == "AMT-1"
    assert invoice["supplier"]["id"] == DEMO_SUPPLIER_SIRET
    assert invoice["buyer"]["id"] == factory.DEMO_BUYER_SERVICE.siret
    assert Decimal(invoice["amount"]["total_with_vat"]) == Decimal("300.00")
