"""Shared fixtures: a real validation pool, a real SQLite store and blob folder per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.cpu_pool import CpuPool
from tests.harness import Harness

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "config" / "demo"


@pytest.fixture(scope="session")
def cpu_pool() -> Iterator[CpuPool]:
    """Two validation processes shared by the whole session (they load schemas and XSLTs once)."""
    pool = CpuPool(2)
    yield pool
    pool.close()


@pytest.fixture
async def harness(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[Harness]:
    """Store, blobs, deposit service and processor on a fresh data folder, with the demo directory."""
    h = await Harness.open(tmp_path, cpu_pool)
    try:
        yield h
    finally:
        await h.close()
