"""Conversions between engine values and gRPC messages (``gateway.grpc_convert``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from engine.catalogue import finding
from engine.report import report_dict
from fluxdepot.v1 import flows_pb2 as pb
from gateway.grpc_convert import report_message, timestamp
from tests.unit.test_report import FLOW, HISTORY, report


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 27, 7, 45, 1, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch: negative seconds
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))),  # another offset
        datetime(2026, 3, 4, 5, 6, 7, 8),  # naive: taken as UTC
    ],
)
def test_timestamp_equals_protobufs_own_conversion(at: datetime) -> None:
    """The integer conversion gives exactly what ``Timestamp.FromDatetime`` gives, and reads back."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    expected = Timestamp()
    expected.FromDatetime(aware)
    assert timestamp(at) == expected
    assert timestamp(at).ToDatetime(tzinfo=UTC) == aware


def test_report_message_is_a_rendering_of_the_typed_report() -> None:
    """``report_message`` reads the typed report: statuses stay enums and times keep their microseconds
    (no round trip through ISO strings); every error, invoice and the next action carry the same values
    as the JSON rendering."""
    r = report(flow_findings=(finding("CHECK_FAILED", "schema missing"),))
    as_json = report_dict(r)
    message = report_message(r)
    assert message.flow.flow_number == FLOW.flow_number and message.flow.status == pb.FLOW_STATUS_PARTIALLY_INTEGRATED
    assert [h.status for h in message.history] == [pb.FLOW_STATUS_RECEIVED, pb.FLOW_STATUS_PROCESSED_SE_CPP]
    assert [h.at.ToDatetime(tzinfo=UTC) for h in message.history] == [h.at for h in HISTORY]
    assert [h.event for h in message.history] == ["", "transport_checked"]
    bad = message.invoices[1]
    assert (bad.number, bad.supplier, bad.amount, bad.currency, bad.status) == (
        "F-002",
        "40483304800022",
        "120.00",
        "EUR",
        "rejected",
    )
    for got, want in zip(bad.errors, as_json["invoices"][1]["errors"], strict=True):
        assert {k: getattr(got, k) for k in want} == {k: v or "" for k, v in want.items()}
    assert [e.code for e in message.errors] == ["CHECK_FAILED"] and message.errors[0].kind == "technical"
    assert message.next_action.code == "REDEPOSIT_INVOICES" and list(message.next_action.invoice_numbers) == ["F-002"]
    assert list(message.return_flows) == list(FLOW.return_flows)
    assert (message.engine_version, message.ruleset_version) == ("0.1.0", "EN16931 1.3.16")
    history_at = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    precise = report_message(replace(r, history=(replace(HISTORY[0], at=history_at),)))
    assert precise.history[0].at.ToDatetime(tzinfo=UTC) == history_at
