"""The stuck-flow watchdog: flows that stay in a non-final status longer than its configured age.

``cutoffs`` is pure; ``StuckFlowWatchdog.check`` asks the store how many flows sit past each cutoff.
The daemon logs them, exports them as a metric and reports the processing health NOT_SERVING until
they move (DESIGN §9.2: every flow ends final or held).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from engine.permissions import Visibility
from engine.queries import FlowQuery
from engine.status import FlowStatus
from engine.store.port import Store

EVERYTHING = Visibility(everything=True)


def cutoffs(now: datetime, stuck_after_s: Mapping[FlowStatus, float]) -> dict[FlowStatus, datetime]:
    """For each watched status, the status-change time before which a flow counts as stuck."""
    return {status: now - timedelta(seconds=age) for status, age in stuck_after_s.items()}


class StuckFlowWatchdog:
    def __init__(
        self, store: Store, stuck_after_s: Mapping[FlowStatus, float], *, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._stuck_after_s = dict(stuck_after_s)
        self._clock = clock
        self.last: dict[FlowStatus, int] = {}

    async def check(self) -> dict[FlowStatus, int]:
        """Count the stuck flows per watched status (statuses with none map to 0)."""
        counts: dict[FlowStatus, int] = {}
        for status, before in cutoffs(self._clock(), self._stuck_after_s).items():
            page = await self._store.search(
                FlowQuery(statuses=(status,), updated_before=before), EVERYTHING, page_size=1
            )
            counts[status] = page.total_count
        self.last = counts
        return counts

    @property
    def healthy(self) -> bool:
        return not any(self.last.values())
