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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with ``BOTH_WALKS = True`` runs each test using ``harness`` twice: its flows processed by
    ``FlowProcessor`` (the asyncio workers' way) and by the flows' pump (``engine.pump``, the daemon's
    way on SQLite), which must reach the same verdicts."""
    if "harness" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_WALKS", False):
        metafunc.parametrize("harness", ["processor", "pump"], indirect=True)


@pytest.fixture
async def harness(tmp_path: Path, cpu_pool: CpuPool, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Store, blobs, deposit service and processor on a fresh data folder, with the demo directory."""
    h = await Harness.open(tmp_path, cpu_pool)
    h.pump = getattr(request, "param", "processor") == "pump"
    try:
        yield h
    finally:
        await h.close()
