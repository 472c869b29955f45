"""Conversions between engine values and gRPC messages (``gateway.grpc_convert``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.grpc_convert import timestamp


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
