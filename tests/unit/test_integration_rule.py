"""The rejection rule (DESIGN §4): complete vs partial rejection, all failing, empty flows, rule choice."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.catalogue import finding
from engine.directory import Partner
from engine.integration import judge, rule_for
from engine.model import Channel, Finding, InvoiceFacts, InvoiceStatus, RejectionRule, Syntax
from engine.status import FlowEvent


def facts(document: str, number: str | None = None) -> InvoiceFacts:
    return InvoiceFacts(
        document=document,
        number=number or document.removesuffix(".xml").upper(),
        type_code="380",
        issue_date="2026-11-02",
        currency="EUR",
        supplier_id="40483304800022",
        supplier_name="S",
        buyer_id="21690123100011",
        buyer_name="B",
        service_code=None,
        engagement_number=None,
        total_without_vat=Decimal(100),
        total_with_vat=Decimal(120),
        amount_due=Decimal(120),
    )


GOOD = (facts("a.xml"), ())
WARNED = (facts("w.xml"), (finding("EN16931_WARNING", rule="BR-FR-1", document="w.xml"),))
NOTED = (facts("n.xml"), (finding("DIRECTORY_CHECKS_NOT_RUN", document="n.xml"),))
BAD = (facts("b.xml"), (finding("BUYER_UNKNOWN", document="b.xml"),))
BAD2 = (facts("c.xml"), (finding("INVOICE_NUMBER_MISSING", document="c.xml"),))

Checked = tuple[InvoiceFacts, tuple[Finding, ...]]


def statuses(checked: list[Checked], rule: RejectionRule) -> tuple[FlowEvent, list[InvoiceStatus]]:
    event, outcomes = judge(checked, rule)
    return event, [o.status for o in outcomes]


@pytest.mark.parametrize("rule", list(RejectionRule))
def test_all_pass(rule: RejectionRule) -> None:
    """Invoices with only warnings or notes are integrated under either rule: ALL_INTEGRATED."""
    event, outcomes = judge([GOOD, WARNED, NOTED], rule)
    assert event is FlowEvent.ALL_INTEGRATED
    assert [o.status for o in outcomes] == [InvoiceStatus.INTEGRATED] * 3
    assert outcomes[1].findings == WARNED[1]


def test_partial_integrates_the_good_ones() -> None:
    """Under PARTIAL the failing invoice is rejected and the others integrated: SOME_INTEGRATED."""
    event, outcomes = judge([GOOD, BAD, WARNED], RejectionRule.PARTIAL)
    assert event is FlowEvent.SOME_INTEGRATED
    assert [o.status for o in outcomes] == [
        InvoiceStatus.INTEGRATED,
        InvoiceStatus.REJECTED,
        InvoiceStatus.INTEGRATED,
    ]
    assert outcomes[1].errors == BAD[1]
    assert outcomes[0].findings == ()


def test_complete_rejects_all_and_says_why() -> None:
    """Under COMPLETE one failing invoice rejects all; the passing ones carry FLOW_REJECTED_COMPLETELY
    naming the failing invoice, and keep their own findings."""
    event, outcomes = judge([GOOD, BAD, WARNED], RejectionRule.COMPLETE)
    assert event is FlowEvent.NONE_INTEGRATED
    assert all(o.status is InvoiceStatus.REJECTED for o in outcomes)
    assert [f.code for f in outcomes[0].findings] == ["FLOW_REJECTED_COMPLETELY"]
    assert [f.code for f in outcomes[2].findings] == ["EN16931_WARNING", "FLOW_REJECTED_COMPLETELY"]
    assert [f.code for f in outcomes[1].findings] == ["BUYER_UNKNOWN"]
    why = outcomes[0].findings[0]
    assert why.is_error and why.document == "a.xml" and "B (b.xml)" in why.message


@pytest.mark.parametrize("rule", list(RejectionRule))
def test_all_fail(rule: RejectionRule) -> None:
    """When every invoice fails, the flow is NONE_INTEGRATED and no FLOW_REJECTED_COMPLETELY is added."""
    event, outcomes = judge([BAD, BAD2], rule)
    assert event is FlowEvent.NONE_INTEGRATED
    assert [o.findings for o in outcomes] == [BAD[1], BAD2[1]]


@pytest.mark.parametrize("rule", list(RejectionRule))
def test_empty_flow_is_never_integrated(rule: RejectionRule) -> None:
    """No invoice at all gives NONE_INTEGRATED: a flow is never integrated by accident."""
    assert judge([], rule) == (FlowEvent.NONE_INTEGRATED, ())


def test_order_is_kept() -> None:
    """Outcomes come back in the order of the checked invoices."""
    _, outcomes = judge([BAD, GOOD, BAD2], RejectionRule.PARTIAL)
    assert [o.facts.document for o in outcomes] == ["b.xml", "a.xml", "c.xml"]


def test_rule_for_channels() -> None:
    """API and portal flows always follow PARTIAL; EDI follows the partner's rule per syntax (default
    partial), and an EDI flow without a known partner falls back to PARTIAL."""
    partner = Partner("AAA001", "55210055400013", rules=((Syntax.UBL_INVOICE, RejectionRule.COMPLETE),))
    assert rule_for(Channel.EDI, partner, Syntax.UBL_INVOICE) is RejectionRule.COMPLETE
    assert rule_for(Channel.EDI, partner, Syntax.CII_16B) is RejectionRule.PARTIAL
    assert rule_for(Channel.API, partner, Syntax.UBL_INVOICE) is RejectionRule.PARTIAL
    assert rule_for(Channel.PORTAL, partner, Syntax.UBL_INVOICE) is RejectionRule.PARTIAL
    assert rule_for(Channel.EDI, None, Syntax.UBL_INVOICE) is RejectionRule.PARTIAL
