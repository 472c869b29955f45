"""What the engine reports as it works, for whoever counts it (the daemon's metrics).

``DepositService`` tells its observer of each flow it created and ``WorkerPool`` of each verdict its
workers recorded, where the work happens: calls go one way, from the engine to the observer, which
returns nothing and must not block (a counter, a histogram). Waking workers and the outbox is not an
observer's job: they wait on the store (``engine.store.wakeups``).
"""

from __future__ import annotations

from typing import Protocol

from engine.model import FlowRecord


class FlowObserver(Protocol):
    def flow_deposited(self, flow: FlowRecord) -> None:
        """A deposit is durable (status RECEIVED)."""

    def flow_judged(self, flow: FlowRecord, seconds: float) -> None:
        """A worker recorded the flow's verdict, ``seconds`` after it claimed the flow."""
