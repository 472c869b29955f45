"""engine.lockout: what one more authentication failure does to a key's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.lockout import FailureWindow, after_failure

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_the_limit_th_failure_within_the_window_locks_for_the_window() -> None:
    window: FailureWindow | None = None
    for minute in range(4):
        window, locked = after_failure(window, T0 + timedelta(minutes=minute), 5, HOUR)
        assert not locked and not window.locked(T0 + timedelta(minutes=minute))
    assert window is not None and window.failures == 4 and window.window_start == T0
    at = T0 + timedelta(minutes=30)
    window, locked = after_failure(window, at, 5, HOUR)
    assert locked and window.locked_until == at + HOUR and window.failures == 0
    assert window.locked(at + HOUR - timedelta(seconds=1)) and not window.locked(at + HOUR)


def test_failures_older_than_the_window_are_forgotten() -> None:
    window = FailureWindow(4, T0)
    window, locked = after_failure(window, T0 + HOUR, 5, HOUR)
    assert not locked and (window.failures, window.window_start) == (1, T0 + HOUR)


def test_failures_during_a_lock_keep_it_and_count_afresh() -> None:
    locked_window = FailureWindow(0, T0, T0 + HOUR)
    window, locked = after_failure(locked_window, T0 + timedelta(minutes=1), 5, HOUR)
    assert not locked and window.locked_until == T0 + HOUR and window.failures == 1
