"""A flow's return flows as files (the report page's "return flow generated", with its download link).

The outbox (``gateway.outbox``) writes each EDI partner's return flows into the partner's ``out/`` folder
and records their names on the flow (``FlowRecord.return_flows``); the partner collects them there and
retention purges them. Reading one back is the gateway's business (it owns that folder layout), so the
reader is given (``ReadReturnFile``); what is decided here is who may read what: only a flow the caller
sees (else ``FlowNotFound``, like a missing one), and only a name recorded on that flow (no path from a
request ever reaches the reader). A file the partner collected or retention purged is ``NotFound``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.errors import NotFound
from engine.permissions import Principal
from engine.services.flows import FileOut, visible_flow
from engine.store.port import Store

ReadReturnFile = Callable[[str, str], Awaitable[bytes | None]]  # (partner code, file name) → bytes, None if gone


class ReturnFileGone(NotFound):
    """The return flow was written, but is no longer on the server (collected by the partner, or purged)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"return flow {name} is no longer available (collected by the partner or purged)")
        self.name = name


class ReturnFiles:
    def __init__(self, store: Store, read: ReadReturnFile) -> None:
        self._store = store
        self._read = read

    async def get(self, principal: Principal, flow_number: str, name: str) -> FileOut:
        """The return flow ``name`` of a flow the caller sees, as the partner received it."""
        flow = await visible_flow(self._store, principal, flow_number)
        if name not in flow.return_flows or flow.partner_code is None:
            raise NotFound(f"flow {flow_number} has no return flow {name}")
        content = await self._read(flow.partner_code, name)
        if content is None:
            raise ReturnFileGone(name)
        return FileOut(name, "application/xml", content)
