"""SQLite query for the SFTP outbox: EDI flows in a final status whose integration report is not written.

A flow's integration report is the return flow named ``<interface code>_<partner>_<flow number>.xml``
(every interface code starts with ``FSO``); other return flows (the optional CPPStatut file) are written
before it, so a flow is pending exactly while that name is missing from ``return_flows``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from engine.model import Channel, FlowRecord
from engine.status import FINAL_STATUSES
from engine.store.sqlite_rows import flow_from_row

_FINAL_CODES = ", ".join(f"'{s.code}'" for s in sorted(FINAL_STATUSES, key=lambda s: s.code))

PENDING_RETURN_FLOWS = f"""
SELECT flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
       deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
       invoice_count, integrated_count, rejected_count, return_flows
FROM flows
WHERE channel = '{Channel.EDI.value}'
  AND partner_code IS NOT NULL
  AND status IN ({_FINAL_CODES})
  AND NOT EXISTS (
      SELECT 1 FROM json_each(flows.return_flows)
      WHERE json_each.value GLOB ('FSO*_' || flows.flow_number || '.xml')
  )
ORDER BY seq
LIMIT :limit
"""  # noqa: S608 - built from enum constants only, never from input


async def pending_return_flows(
    fetch: Callable[[str, dict[str, Any]], Awaitable[list[Any]]], limit: int
) -> list[FlowRecord]:
    """The oldest ``limit`` EDI flows in a final status without a recorded integration report."""
    return [flow_from_row(row) for row in await fetch(PENDING_RETURN_FLOWS, {"limit": limit})]
