"""The report of a flow carrying invoices an earlier flow already integrated (DUPLICATE_INVOICE), built from
real deposits processed by the real pipeline: its next action and its hints agree that such an invoice is
never deposited again, in every rendering the depositor may read."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

from engine.directory import DirectoryData, Partner
from engine.model import Channel, RejectionRule, Syntax
from engine.report import Report, render_text
from engine.status import FlowStatus
from tests import factory
from tests.harness import DEMO_PROVIDER_SIRET, Harness

BOTH_WALKS = True  # each test twice: FlowProcessor and the flows' pump (tests/conftest.py)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _readable(report: Report) -> str:
    """Everything a depositor reads: the next action, every hint, the text rendering."""
    hints = [e.hint for i in report.invoices for e in i.errors + i.warnings]
    hints += [e.hint for e in report.errors + report.warnings]
    return "\n".join([report.next_action.message, *hints, render_text(report)])


async def test_a_flow_of_duplicates_only_has_nothing_to_deposit_again(harness: Harness) -> None:
    """The same invoice deposited a second time is REJECTED as DUPLICATE_INVOICE; its report says there is
    nothing to deposit again (NONE, no invoice listed) and nowhere asks for the flow to be deposited again."""
    content = factory.ubl_invoice(factory.integrating("DUPR-0001"))
    first = await harness.deposit_and_process("a.xml", content)
    second = await harness.deposit_and_process("a-again.xml", content)
    assert (first.status, second.status) == (FlowStatus.INTEGRATED, FlowStatus.REJECTED)
    report = await harness.report(second.flow_number)
    assert [e["code"] for e in report["invoices"][0]["errors"]] == ["DUPLICATE_INVOICE"]
    action = report["next_action"]
    assert action["code"] == "NONE" and action["invoice_numbers"] == []
    assert action["message"] == (
        "Nothing to deposit again: the rejected invoices were already integrated by an earlier flow (DUPR-0001)."
    )
    readable = _readable(await harness.integration_report(second.flow_number))
    assert "Do not deposit an invoice twice" in readable
    assert "deposit the whole flow again" not in readable.lower()


async def test_duplicates_are_left_out_of_the_invoices_to_send_again(harness: Harness) -> None:
    """A flow with a good invoice, a duplicate and an invoice with an unknown service code ends
    PARTIALLY_INTEGRATED; only the invoice to correct is listed to be sent again, the duplicate is named
    as one to leave out."""
    await harness.deposit_and_process("first.xml", factory.ubl_invoice(factory.integrating("DUPR-0010")))
    bad = replace(factory.integrating("DUPR-0012"), service_code="SERV-INCONNU")
    content = _zip(
        {
            "good.xml": factory.ubl_invoice(factory.integrating("DUPR-0011")),
            "dup.xml": factory.ubl_invoice(factory.integrating("DUPR-0010")),
            "bad.xml": factory.ubl_invoice(bad),
        }
    )
    flow = await harness.deposit_and_process("mixed.zip", content)
    assert flow.status is FlowStatus.PARTIALLY_INTEGRATED
    report = await harness.report(flow.flow_number)
    action = report["next_action"]
    assert action["code"] == "REDEPOSIT_INVOICES" and action["invoice_numbers"] == ["DUPR-0012"]
    assert action["message"] == (
        "Deposit again, in a new flow, only these invoices, corrected where errors are listed: DUPR-0012. "
        "Leave out DUPR-0010: already integrated by an earlier flow."
    )
    assert "deposit the whole flow again" not in _readable(await harness.integration_report(flow.flow_number)).lower()


async def test_complete_rejection_caused_by_a_duplicate_asks_only_for_the_others(harness: Harness) -> None:
    """Under a partner's complete-rejection rule a duplicate rejects the whole EDI flow; the report asks to
    send only the invoice that passed (unchanged), never the whole flow with the duplicate in it."""
    await harness.store.import_directory(
        DirectoryData(
            partners=(Partner("BBB002", DEMO_PROVIDER_SIRET, rules=((Syntax.UBL_INVOICE, RejectionRule.COMPLETE),)),)
        )
    )
    await harness.deposit_and_process("first.xml", factory.ubl_invoice(factory.integrating("DUPR-0020")))
    content = _zip(
        {
            "dup.xml": factory.ubl_invoice(factory.integrating("DUPR-0020")),
            "good.xml": factory.ubl_invoice(factory.integrating("DUPR-0021")),
        }
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
    assert flow.status is FlowStatus.REJECTED
    report = await harness.report(flow.flow_number)
    action = report["next_action"]
    assert action["code"] == "REDEPOSIT_INVOICES" and action["invoice_numbers"] == ["DUPR-0021"]
    assert "deposit the whole flow again" not in _readable(await harness.integration_report(flow.flow_number)).lower()
