"""The integration report: one typed builder, JSON, XML and text renderings that agree, next_action per case."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from lxml import etree

from engine.audit import GENESIS
from engine.catalogue import CATALOGUE, finding
from engine.model import (
    Channel,
    FlowRecord,
    InvoiceFacts,
    InvoiceOutcome,
    InvoiceStatus,
    Kind,
    Severity,
    StatusChange,
    Syntax,
)
from engine.report import (
    REPORT_NAMESPACE,
    NextStep,
    Report,
    ReportFormat,
    build_report,
    render_file,
    render_json,
    render_text,
    render_xml,
    report_dict,
)
from engine.status import FlowEvent, FlowStatus

NS = {"r": REPORT_NAMESPACE}
PARIS = timezone(timedelta(hours=1))
AT = datetime(2026, 11, 2, 15, 10, 25, 536000, tzinfo=PARIS)

FLOW = FlowRecord(
    flow_number="AAA0011100000000000000042",
    file_name="factures.zip",
    syntax=Syntax.UBL_INVOICE,
    channel=Channel.EDI,
    issuer_siret="55210055400013",
    depositor="partner:AAA001",
    status=FlowStatus.PARTIALLY_INTEGRATED,
    deposited_at=AT,
    status_changed_at=AT + timedelta(seconds=3),
    sha256="ab" * 32,
    size_bytes=2048,
    partner_code="AAA001",
    return_flows=("FSO1100A_AAA001_AAA0011100000000000000042.xml",),
)
HISTORY = [
    StatusChange(FLOW.flow_number, 1, FlowStatus.RECEIVED, None, AT, "partner:AAA001", None, GENESIS, "h1"),
    StatusChange(
        FLOW.flow_number,
        2,
        FlowStatus.PROCESSED_SE_CPP,
        FlowEvent.TRANSPORT_CHECKED,
        AT + timedelta(seconds=1),
        "worker:w1",
        None,
        "h1",
        "h2",
    ),
]


def facts(document: str, number: str | None) -> InvoiceFacts:
    return InvoiceFacts(
        document=document,
        number=number,
        type_code="380",
        issue_date="2026-11-02",
        currency="EUR",
        supplier_id="40483304800022",
        supplier_name="Papeterie",
        buyer_id="21690123100011",
        buyer_name="Commune",
        service_code="SERV-COMPTA",
        engagement_number=None,
        total_without_vat=Decimal("100.00"),
        total_with_vat=Decimal("120.00"),
        amount_due=Decimal("120.00"),
    )


GOOD = InvoiceOutcome(
    facts("a.xml", "F-001"),
    InvoiceStatus.INTEGRATED,
    (finding("EN16931_WARNING", "BR-FR-05 advises …", rule="BR-FR-05", document="a.xml"),),
)
BAD = InvoiceOutcome(
    facts("b.xml", "F-002"),
    InvoiceStatus.REJECTED,
    (
        finding("BUYER_UNKNOWN", "The recipient 21690123100011 is not known.", location="BT-46", document="b.xml"),
        finding("SERVICE_CODE_UNKNOWN", "Service « X » inconnu", document="b.xml"),
    ),
)
NO_NUMBER = InvoiceOutcome(facts("c.xml", None), InvoiceStatus.REJECTED, (finding("INVOICE_NUMBER_MISSING"),))
DUP = InvoiceOutcome(
    facts("d.xml", "F-003"),
    InvoiceStatus.REJECTED,
    (finding("DUPLICATE_INVOICE", "F-003 was already integrated in flow X.", document="d.xml"),),
)


def report(flow: FlowRecord = FLOW, invoices: tuple[InvoiceOutcome, ...] = (GOOD, BAD), flow_findings=()) -> Report:  # type: ignore[no-untyped-def]
    return build_report(
        flow,
        HISTORY,
        list(flow_findings),
        list(invoices),
        ruleset_version="EN16931 1.3.16",
        engine_version="0.1.0",
    )


def test_report_has_the_documented_fields() -> None:
    """The report carries every field of DESIGN §7, with ISO datetimes with offset and string amounts."""
    r = report_dict(report())
    for key in (
        "flow_number",
        "file_name",
        "syntax",
        "interface_code",
        "channel",
        "issuer",
        "depositor",
        "status",
        "status_code",
        "status_label",
        "deposited_at",
        "status_changed_at",
        "history",
        "sha256",
        "size_bytes",
        "invoice_count",
        "integrated_count",
        "rejected_count",
        "invoices",
        "errors",
        "return_flows",
        "engine_version",
        "ruleset_version",
        "next_action",
    ):
        assert key in r, key
    assert r["status"] == "PARTIALLY_INTEGRATED" and r["status_code"] == "IN_INTEGRE_PARTIEL"
    assert r["status_label"] == "Intégré partiel"
    assert r["interface_code"] == "FSO1100A"
    assert r["deposited_at"] == "2026-11-02T15:10:25.536+01:00"
    assert [h["status_code"] for h in r["history"]] == ["IN_RECU", "IN_TRAITE_SE_CPP"]
    assert r["history"][1]["event"] == "transport_checked" and r["history"][0]["event"] is None
    assert (r["invoice_count"], r["integrated_count"], r["rejected_count"]) == (2, 1, 1)
    bad = r["invoices"][1]
    assert bad["amount"] == {
        "total_without_vat": "100.00",
        "total_with_vat": "120.00",
        "amount_due": "120.00",
    }
    assert bad["status"] == "rejected" and bad["supplier"]["id"] == "40483304800022"
    assert [e["code"] for e in bad["errors"]] == ["BUYER_UNKNOWN", "SERVICE_CODE_UNKNOWN"]
    error = bad["errors"][0]
    assert error == {
        "code": "BUYER_UNKNOWN",
        "kind": "business",
        "severity": "error",
        "message": "The recipient 21690123100011 is not known.",
        "rule": None,
        "business_term": "BT-46",
        "location": "BT-46",
        "document": "b.xml",
        "hint": CATALOGUE["BUYER_UNKNOWN"].hint,
    }
    good = r["invoices"][0]
    assert good["errors"] == [] and [w["code"] for w in good["warnings"]] == ["EN16931_WARNING"]


def test_naive_datetimes_get_utc_offset() -> None:
    """A naive datetime is rendered as UTC with its offset, never without one."""
    r = report_dict(report(replace(FLOW, deposited_at=datetime(2026, 1, 1, 12, 0))))
    assert r["deposited_at"] == "2026-01-01T12:00:00.000+00:00"


def test_json_is_stable_utf8_and_round_trips() -> None:
    """render_json is deterministic, keeps UTF-8 characters and loads back to the same dict."""
    r = report()
    text = render_json(r)
    assert text == render_json(report())
    assert "Intégré partiel" in text and "«" in text
    assert json.loads(text) == report_dict(r)
    assert text.startswith('{\n  "')


def test_xml_parses_and_carries_every_error_with_code_and_hint() -> None:
    """The XML is declared UTF-8, namespaced, and holds each invoice's errors with their code and hint."""
    r = report(flow_findings=(finding("CHECK_FAILED", "schema missing"),))
    xml = render_xml(r)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert xml == render_xml(report(flow_findings=(finding("CHECK_FAILED", "schema missing"),)))
    root = etree.fromstring(xml)
    assert root.tag == f"{{{REPORT_NAMESPACE}}}IntegrationReport"
    assert root.findtext("r:FlowNumber", namespaces=NS) == FLOW.flow_number
    assert root.findtext("r:StatusCode", namespaces=NS) == "IN_INTEGRE_PARTIEL"
    assert root.findtext("r:StatusLabel", namespaces=NS) == "Intégré partiel"
    invoices = root.findall("r:Invoices/r:Invoice", NS)
    assert len(invoices) == 2
    errors = invoices[1].findall("r:Errors/r:Error", NS)
    assert [(e.findtext("r:Code", namespaces=NS), e.findtext("r:Hint", namespaces=NS)) for e in errors] == [
        ("BUYER_UNKNOWN", CATALOGUE["BUYER_UNKNOWN"].hint),
        ("SERVICE_CODE_UNKNOWN", CATALOGUE["SERVICE_CODE_UNKNOWN"].hint),
    ]
    assert errors[1].findtext("r:Message", namespaces=NS) == "Service « X » inconnu"
    assert invoices[1].findtext("r:Amount/r:TotalWithVat", namespaces=NS) == "120.00"
    flow_errors = root.findall("r:Errors/r:Error", NS)
    assert [e.findtext("r:Code", namespaces=NS) for e in flow_errors] == ["CHECK_FAILED"]
    assert [e.findtext("r:Kind", namespaces=NS) for e in flow_errors] == ["technical"]
    assert [h.findtext("r:StatusCode", namespaces=NS) for h in root.findall("r:History/r:StatusChange", NS)] == [
        "IN_RECU",
        "IN_TRAITE_SE_CPP",
    ]
    assert root.findtext("r:ReturnFlows/r:ReturnFlow", namespaces=NS) == FLOW.return_flows[0]
    assert root.findtext("r:NextAction/r:Code", namespaces=NS) == "REDEPOSIT_INVOICES"


def test_json_and_xml_come_from_one_builder() -> None:
    """Every scalar top-level field of the dict appears with the same value in the XML."""
    r = report()
    root = etree.fromstring(render_xml(r))
    for key, value in report_dict(r).items():
        if isinstance(value, (dict, list)) or value is None:
            continue
        name = "".join(p[:1].upper() + p[1:] for p in key.split("_"))
        expected = ("true" if value else "false") if isinstance(value, bool) else str(value)
        assert root.findtext(f"r:{name}", namespaces=NS) == expected, key


@pytest.mark.parametrize(
    ("status", "invoices", "code", "numbers"),
    [
        (FlowStatus.INTEGRATED, (GOOD,), "NONE", []),
        (FlowStatus.PARTIALLY_INTEGRATED, (GOOD, BAD, NO_NUMBER), "REDEPOSIT_INVOICES", ["F-002", "c.xml"]),
        (FlowStatus.REJECTED, (BAD,), "REDEPOSIT_FLOW", []),
        (FlowStatus.REJECTED, (DUP,), "NONE", []),
        (FlowStatus.PARTIALLY_INTEGRATED, (GOOD, DUP), "NONE", []),
        (FlowStatus.REJECTED, (DUP, BAD), "REDEPOSIT_INVOICES", ["F-002"]),
        (FlowStatus.PARTIALLY_INTEGRATED, (GOOD, DUP, BAD, NO_NUMBER), "REDEPOSIT_INVOICES", ["F-002", "c.xml"]),
        (FlowStatus.REJECTED, (), "REDEPOSIT_FLOW", []),
        (FlowStatus.WARNING, (), "REDEPOSIT_FLOW", []),
        (FlowStatus.RECEIVED, (), "WAIT", []),
        (FlowStatus.IN_PROGRESS, (), "WAIT", []),
        (FlowStatus.WAITING_FOR_REPROCESSING, (), "WAIT", []),
    ],
)
def test_next_action(status: FlowStatus, invoices: tuple[InvoiceOutcome, ...], code: str, numbers: list[str]) -> None:
    """The report says what to do next: nothing, re-deposit the flow or only the listed invoices, or wait;
    an invoice already integrated by an earlier flow is never listed to be sent again."""
    action = report_dict(report(replace(FLOW, status=status), invoices))["next_action"]
    assert action["code"] == code
    assert action["invoice_numbers"] == numbers
    assert action["message"]
    for number in numbers:
        assert number in action["message"]


@pytest.mark.parametrize(
    ("status", "invoices"),
    [
        (FlowStatus.REJECTED, (DUP,)),
        (FlowStatus.PARTIALLY_INTEGRATED, (GOOD, DUP)),
        (FlowStatus.REJECTED, (DUP, BAD)),
    ],
)
def test_a_duplicate_is_never_to_be_deposited_again(status: FlowStatus, invoices: tuple[InvoiceOutcome, ...]) -> None:
    """Next to "do not deposit an invoice twice", the next action never asks for the whole flow again and
    never names the duplicate among the invoices to send; with only duplicates rejected, nothing is."""
    action = report_dict(report(replace(FLOW, status=status), invoices))["next_action"]
    assert "whole flow" not in action["message"]
    assert "F-003" not in action["invoice_numbers"]
    if all(o is DUP for o in invoices if o.status is InvoiceStatus.REJECTED):
        assert action["message"].startswith("Nothing to deposit again:") and "F-003" in action["message"]


def test_offline_check_report_with_empty_values() -> None:
    """A report for `fluxdepot check` (no flow number, no history, no invoices) builds and renders."""
    flow = replace(FLOW, flow_number="", depositor="", partner_code=None, return_flows=(), status=FlowStatus.REJECTED)
    r = build_report(
        flow,
        [],
        [finding("XSD_INVALID", "line 3: bad element", location="line 3")],
        [],
        ruleset_version="",
        engine_version="0.1.0",
    )
    as_dict = report_dict(r)
    assert as_dict["flow_number"] == "" and as_dict["partner_code"] is None and as_dict["history"] == []
    root = etree.fromstring(render_xml(r))
    assert root.findtext("r:FlowNumber", namespaces=NS) == ""
    assert root.find("r:PartnerCode", NS) is None
    text = render_text(r)
    assert "factures.zip" in text and "XSD_INVALID" in text and "REDEPOSIT_FLOW" in text


def test_text_summary_lists_invoices_and_hints() -> None:
    """The text summary names the flow, its status, one line per invoice and each error with its hint."""
    text = render_text(report())
    assert FLOW.flow_number in text
    assert "PARTIALLY_INTEGRATED" in text
    assert "F-001" in text and "F-002" in text
    assert "BUYER_UNKNOWN" in text and CATALOGUE["BUYER_UNKNOWN"].hint in text
    assert "REDEPOSIT_INVOICES" in text


def test_the_report_is_typed() -> None:
    """The report keeps the engine's values — the flow, datetimes, enums, amounts — and only its
    renderings turn them into text; the next action's code is an enum with the documented names."""
    r = report(flow_findings=(finding("CHECK_FAILED", "schema missing"),))
    assert r.flow is FLOW and r.history[1].at == AT + timedelta(seconds=1)
    assert r.history[1].event is FlowEvent.TRANSPORT_CHECKED
    bad = r.invoices[1]
    assert bad.status is InvoiceStatus.REJECTED and bad.facts.total_with_vat == Decimal("120.00")
    assert (bad.errors[0].kind, bad.errors[0].severity) == (Kind.BUSINESS, Severity.ERROR)
    assert r.errors[0].kind is Kind.TECHNICAL and r.errors[0].hint == CATALOGUE["CHECK_FAILED"].hint
    assert r.next_action.code is NextStep.REDEPOSIT_INVOICES and r.next_action.invoice_numbers == ("F-002",)
    assert [s.value for s in NextStep] == ["NONE", "REDEPOSIT_FLOW", "REDEPOSIT_INVOICES", "WAIT"]


def test_report_files_are_the_json_and_xml_renderings() -> None:
    """``render_file`` gives the JSON rendering (UTF-8) or the XML one, with their extension and type."""
    r = report()
    assert render_file(r, ReportFormat.JSON) == render_json(r).encode()
    assert render_file(r, ReportFormat.XML) == render_xml(r)
    assert (ReportFormat.JSON.extension, ReportFormat.JSON.content_type) == ("json", "application/json")
    assert (ReportFormat.XML.extension, ReportFormat.XML.content_type) == ("xml", "application/xml")


def test_times_are_rendered_to_the_millisecond_with_their_offset() -> None:
    """Every datetime of the JSON (and so of the XML) reads like ``2026-12-06T21:00:48.123+00:00``."""
    at = datetime(2026, 12, 6, 21, 0, 48, 123456)
    r = report_dict(report(replace(FLOW, deposited_at=at, status_changed_at=at.replace(tzinfo=UTC))))
    assert r["deposited_at"] == r["status_changed_at"] == "2026-12-06T21:00:48.123+00:00"
    assert r["history"][0]["at"] == "2026-11-02T15:10:25.536+01:00"
