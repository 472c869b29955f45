"""The wall clock every default ``clock=`` parameter uses: timezone-aware UTC (tests pass their own)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
