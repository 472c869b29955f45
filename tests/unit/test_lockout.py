"""engine.lockout: what one authentication attempt does to the windows of its keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.lockout import (
    Backoff,
    FailureWindow,
    LockoutPolicy,
    after_failure,
    attempt_limits,
    forgiven,
    pair_key,
    source_of,
    taken,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
BACKOFF = Backoff(MINUTE, HOUR)
PAIR, ADDR, PARTNER = "pair:AAA001@10.0.0.2", "addr:10.0.0.2", "partner:AAA001"
LIMITS = [(ADDR, 20), (PAIR, 5), (PARTNER, 50)]


def fail(rows: dict[str, FailureWindow], at: datetime, limits: list[tuple[str, int]] = LIMITS) -> list[str]:
    """One failed attempt applied to ``rows`` in place (as a store would); returns the keys it locked."""
    changed, locked = after_failure(rows, limits, at, BACKOFF)
    rows.update(changed)
    return locked


def test_the_limit_th_failure_within_the_window_locks_the_pair_only() -> None:
    """Five failures of a pair within the window lock that pair for the first lockout; the address and
    the partner, far from their limits, are not locked and the lock resets the pair's count."""
    rows: dict[str, FailureWindow] = {}
    for minute in range(4):
        assert fail(rows, T0 + minute * MINUTE) == []
    assert (rows[PAIR].failures, rows[PAIR].window_start) == (4, T0)
    at = T0 + 30 * MINUTE
    assert fail(rows, at) == [PAIR]
    assert rows[PAIR] == FailureWindow(0, at, at + MINUTE, strikes=1)
    assert (rows[ADDR].failures, rows[PARTNER].failures) == (5, 5)
    assert not rows[ADDR].locked(at) and not rows[PARTNER].locked(at)


def test_an_attempt_is_counted_on_all_its_keys_or_on_none() -> None:
    """While one key is locked, a failure counts on none of them: a locked-out address cannot push the
    partner towards its every-address limit."""
    rows = {PAIR: FailureWindow(0, T0, T0 + HOUR, strikes=1), PARTNER: FailureWindow(7, T0)}
    assert taken(rows, LIMITS, T0 + MINUTE, HOUR) is None
    assert fail(rows, T0 + MINUTE) == []
    assert rows[PARTNER].failures == 7 and ADDR not in rows


def test_attempts_taken_before_their_check_cannot_pass_the_limit() -> None:
    """Attempts counted before their check (a password) are refused past the limit even though none has
    failed yet: parallel connections get at most ``limit`` checks; the failures then lock the key once."""
    rows: dict[str, FailureWindow] = {}
    granted = 0
    for _ in range(15):
        counted = taken(rows, LIMITS, T0, HOUR)
        if counted is not None:
            rows.update(counted)
            granted += 1
    assert granted == 5 and rows[PARTNER].failures == 5
    locks = []
    for _ in range(granted):
        changed, locked = after_failure(rows, LIMITS, T0, BACKOFF, already_taken=True)
        rows.update(changed)
        locks += locked
    assert locks == [PAIR] and rows[PAIR].locked(T0) and rows[PARTNER].failures == 5


def test_locks_back_off_and_strikes_are_forgotten_after_a_quiet_window() -> None:
    """Each lock of a key lasts twice the one before (1, 2, 4 ... minutes, at most the hour); a key quiet
    for a window after its last lock ended starts again from the first lockout."""
    limits = [(PAIR, 1)]
    rows: dict[str, FailureWindow] = {}
    at = T0
    durations = []
    for _ in range(8):
        assert fail(rows, at, limits) == [PAIR]
        lock = rows[PAIR].locked_until
        assert lock is not None
        durations.append(lock - at)
        at = lock
    assert durations == [MINUTE * n for n in (1, 2, 4, 8, 16, 32)] + [HOUR, HOUR]
    quiet = at + HOUR + timedelta(seconds=1)
    assert fail(rows, quiet, limits) == [PAIR]
    assert rows[PAIR].locked_until == quiet + MINUTE


def test_failures_older_than_the_window_are_forgotten() -> None:
    """A failure after the window counts from one again, in a new window."""
    rows = {PAIR: FailureWindow(4, T0)}
    assert fail(rows, T0 + HOUR) == []
    assert (rows[PAIR].failures, rows[PAIR].window_start) == (1, T0 + HOUR)


def test_the_partner_is_locked_everywhere_at_its_own_limit() -> None:
    """Failures of one partner from many addresses add up on ``partner:<code>``, which locks at its limit."""
    policy = LockoutPolicy(max_pair_failures=5, max_address_failures=20, max_partner_failures=10)
    rows: dict[str, FailureWindow] = {}
    locked: list[str] = []
    for n in range(10):
        locked += fail(rows, T0, attempt_limits("AAA001", f"10.0.0.{n}", policy))
    assert locked == ["partner:AAA001"]
    assert all(rows[pair_key("AAA001", f"10.0.0.{n}")].failures == 1 for n in range(10))


def test_a_login_forgives_its_pairs_failures_everywhere_but_not_a_lock() -> None:
    """A success on a pair drops its failures and strikes and takes them off the partner and the address;
    a locked pair stays locked; a clean pair changes nothing."""
    rows = {PAIR: FailureWindow(3, T0), ADDR: FailureWindow(9, T0), PARTNER: FailureWindow(2, T0)}
    changed = forgiven(rows, PAIR, [ADDR, PARTNER])
    assert changed == {PAIR: None, ADDR: FailureWindow(6, T0), PARTNER: FailureWindow(0, T0)}
    locked = {PAIR: FailureWindow(0, T0, T0 + HOUR, strikes=2)}
    assert forgiven(locked, PAIR, [])[PAIR] == FailureWindow(0, T0, T0 + HOUR, strikes=0)
    assert forgiven({}, PAIR, [ADDR]) == {}


def test_sources_and_keys() -> None:
    """IPv4 counts as is (also mapped in IPv6), IPv6 by its /64; a user name that is no partner code
    counts on its source only."""
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_of("?") == "?"
    policy = LockoutPolicy()
    assert attempt_limits(None, "192.0.2.7", policy) == [("addr:192.0.2.7", 20)]
    assert attempt_limits("AAA001", "192.0.2.7", policy) == [
        ("addr:192.0.2.7", 20),
        ("pair:AAA001@192.0.2.7", 5),
        ("partner:AAA001", 50),
    ]
