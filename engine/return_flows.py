"""Return flows (DESIGN §7): which flows get them, and what their writer needs from the store.

An EDI partner's flow gets its integration report (and its CPPStatut file, when the partner asks for
one) in the partner's ``out/`` once it reaches a final status; no other flow does. The writer
(``gateway.outbox``) publishes them; ``ReturnFlowStore`` is the part of ``engine.store.port.Store`` it
uses, so that it depends on no more of the store than that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from engine.directory import Partner
from engine.model import Channel, FlowRecord

if TYPE_CHECKING:
    from engine.store.port import ReportInputs


def has_return_flows(flow: FlowRecord) -> bool:
    """Whether the flow gets return flows: an EDI partner's deposit (the terms of ``pending_return_flows``)."""
    return flow.channel is Channel.EDI and flow.partner_code is not None


class ReturnFlowStore(Protocol):
    """What the return flows' writer reads and records (see ``engine.store.port.Store`` for each)."""

    async def try_singleton(self, name: str) -> bool: ...

    async def release_singleton(self, name: str) -> None: ...

    async def pending_return_flows(self, limit: int = 100) -> list[FlowRecord]: ...

    async def report_inputs(self, flow_numbers: Sequence[str]) -> dict[str, ReportInputs]: ...

    async def get_partner(self, code: str) -> Partner | None: ...

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None: ...

    async def latest_cursor(self) -> int: ...

    async def wait_for_events(self, cursor: int, timeout_s: float) -> None: ...

    async def wait_for_verdicts(self, seen: int, timeout_s: float) -> int: ...
