"""Fixtures shared by the HTTP faces' tests."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The log events, with the context variables merged as the daemon's configuration does."""
    capture = structlog.testing.LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**previous)
