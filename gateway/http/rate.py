"""Per-caller request rates (AFNOR Flow Service: "429 Too Many Requests" with ``Retry-After``).

A token bucket per caller key (a principal's depositor, else the source address): ``burst`` requests at
once, refilled at ``per_s``. In memory, per daemon: with several daemons behind one address a caller gets
each daemon's rate, which is what a rate protecting each daemon's resources should do. The table keeps the
most recently seen callers only, so hostile clients cycling keys cannot grow it without bound.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CALLERS = 10_000


class RateLimiter:
    def __init__(self, per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_s = per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def take(self, key: str) -> float:
        """Spend one request of ``key``'s bucket: 0 when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._per_s)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._per_s
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_CALLERS:
            self._buckets.popitem(last=False)
        return wait


def retry_after_s(wait_s: float) -> int:
    """``Retry-After`` is whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))
