"""Authentication failure windows (SFTP lockouts), pure: what one more failure does to a key's window.

A key (``partner:<code>`` or ``addr:<address>``) counts failures in a window that starts at its first
counted failure and lasts ``window``; reaching ``limit`` failures inside it locks the key for ``window``
from that failure and starts counting afresh. The stores keep one row per key, shared by every daemon, so
a partner locked through one daemon is locked on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class FailureWindow:
    failures: int
    window_start: datetime
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


def after_failure(
    current: FailureWindow | None, now: datetime, limit: int, window: timedelta
) -> tuple[FailureWindow, bool]:
    """The key's window after one more failure at ``now``, and whether that failure locked it."""
    locked_until = current.locked_until if current is not None and current.locked(now) else None
    if current is None or current.window_start <= now - window:
        failures, start = 1, now
    else:
        failures, start = current.failures + 1, current.window_start
    if failures >= limit:
        return FailureWindow(0, now, now + window), True
    return FailureWindow(failures, start, locked_until), False
