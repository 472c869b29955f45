"""The rejection rule (DESIGN §4): from checked invoices to invoice outcomes and the flow's closing event.

Pure. Invariants:

* an invoice with any error-severity finding is REJECTED; warnings and notes never reject;
* under PARTIAL the other invoices are INTEGRATED;
* under COMPLETE one rejected invoice rejects them all, and each invoice that passed its own checks gets
  a ``FLOW_REJECTED_COMPLETELY`` finding so its report line says why;
* the event is ``engine.status.verdict_event(integrated, rejected)``; no invoice at all gives
  ``NONE_INTEGRATED`` (a flow is never integrated by accident).

API and portal flows always follow partial rejection; EDI flows follow their partner's rule per syntax.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.catalogue import finding
from engine.directory import Partner
from engine.model import Channel, Finding, InvoiceFacts, InvoiceOutcome, InvoiceStatus, RejectionRule, Syntax
from engine.status import FlowEvent, verdict_event

_MAX_NAMED = 5  # rejected invoices named in a FLOW_REJECTED_COMPLETELY message before "and N more"


def rule_for(channel: Channel, partner: Partner | None, syntax: Syntax) -> RejectionRule:
    """The rejection rule of a flow: PARTIAL for API and portal; the partner's rule for EDI.

    An EDI flow without a known partner falls back to PARTIAL, the documented default.
    """
    if channel is Channel.EDI and partner is not None:
        return partner.rule_for(syntax)
    return RejectionRule.PARTIAL


def judge(
    checked: Sequence[tuple[InvoiceFacts, tuple[Finding, ...]]], rule: RejectionRule
) -> tuple[FlowEvent, tuple[InvoiceOutcome, ...]]:
    """Apply ``rule`` to the checked invoices; return the closing event and each invoice's outcome."""
    failing = [facts for facts, findings in checked if any(f.is_error for f in findings)]
    reject_all = rule is RejectionRule.COMPLETE and bool(failing)
    outcomes: list[InvoiceOutcome] = []
    for facts, findings in checked:
        failed = any(f.is_error for f in findings)
        if failed:
            outcomes.append(InvoiceOutcome(facts, InvoiceStatus.REJECTED, findings))
        elif reject_all:
            because = _rejected_completely(facts, failing)
            outcomes.append(InvoiceOutcome(facts, InvoiceStatus.REJECTED, (*findings, because)))
        else:
            outcomes.append(InvoiceOutcome(facts, InvoiceStatus.INTEGRATED, findings))
    integrated = sum(o.status is InvoiceStatus.INTEGRATED for o in outcomes)
    return verdict_event(integrated, len(outcomes) - integrated), tuple(outcomes)


def _rejected_completely(facts: InvoiceFacts, failing: Sequence[InvoiceFacts]) -> Finding:
    names = [_name(f) for f in failing[:_MAX_NAMED]]
    more = len(failing) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more else "")
    count = "invoice was" if len(failing) == 1 else "invoices were"
    return finding(
        "FLOW_REJECTED_COMPLETELY",
        f"This invoice passed its checks, but the flow is under complete rejection and {len(failing)} other "
        f"{count} rejected: {listed}.",
        document=facts.document,
    )


def _name(facts: InvoiceFacts) -> str:
    number = (facts.number or "").strip()
    return f"{number} ({facts.document})" if number else facts.document
