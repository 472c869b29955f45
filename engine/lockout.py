"""Authentication failure windows (SFTP lockouts), pure: what one attempt does to the windows of its keys.

An attempt is counted on several keys at once (``attempt_limits``): its (partner, source address) pair
``pair:<code>@<source>``, the source ``addr:<source>`` (any user name) and the partner ``partner:<code>``
(from every address), each with its own limit. The source is the address, an IPv6 one cut to its /64 (one
machine, or one customer, has the whole /64).

Invariants:

* A key counts failed attempts in a window that starts at its first counted failure and lasts
  ``Backoff.longest``; older failures are forgotten.
* An attempt is counted on all its keys or on none: not at all while one of them is *blocked*, that is
  locked, or with its limit already reached by attempts still being checked (``taken``). So parallel
  connections never get more attempts checked than a key's limit, and attempts refused by a lock do not
  count towards the partner's or the address's limit (one address cannot lock a partner everywhere).
* A key whose failures reach its limit is locked for ``Backoff.lock_for(strikes)``: the first lock lasts
  ``first``, each further one twice the one before, up to ``longest``; ``strikes`` (locks so far) are
  forgotten once a window has passed since the last lock ended. A lock resets the count.
* A success on a pair (``forgiven``) forgets that pair's failures and strikes, and takes its failures off
  the partner's and the address's counts: the partner fumbling its own key does not count against it.
  A lock in force stays.

The stores keep one row per key, shared by every daemon, and run each of these functions in one transaction
over the rows of the attempt's keys.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

Rows = Mapping[str, "FailureWindow | None"]
Limits = Sequence[tuple[str, int]]
_MAX_DOUBLINGS = 30  # 2**30 times any first lock is far past any longest one


@dataclass(frozen=True)
class FailureWindow:
    failures: int
    window_start: datetime
    locked_until: datetime | None = None
    strikes: int = 0  # locks so far; the next one lasts longer

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def current(self, now: datetime, window: timedelta) -> bool:
        """Whether the failures counted are still in their window."""
        return self.window_start > now - window


@dataclass(frozen=True)
class Backoff:
    """Lock durations: ``first``, then doubled at each lock, up to ``longest`` (also the counting window)."""

    first: timedelta
    longest: timedelta

    def lock_for(self, strikes: int) -> timedelta:
        doubled: timedelta = self.first * 2 ** min(strikes, _MAX_DOUBLINGS)
        return min(doubled, self.longest)


@dataclass(frozen=True)
class LockoutPolicy:
    """The limits of each kind of key and the back-off (the SFTP settings)."""

    max_pair_failures: int = 5
    max_address_failures: int = 20
    max_partner_failures: int = 50
    backoff: Backoff = Backoff(timedelta(minutes=1), timedelta(hours=1))


def source_of(address: str) -> str:
    """The source an address counts for: IPv4 as is (also when mapped in IPv6), IPv6 as its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def pair_key(partner: str, address: str) -> str:
    return f"pair:{partner}@{source_of(address)}"


def attempt_limits(partner: str | None, address: str, policy: LockoutPolicy) -> list[tuple[str, int]]:
    """The keys an attempt counts on, with their limits; a user name that is no partner code counts only on
    its source."""
    limits = [(f"addr:{source_of(address)}", policy.max_address_failures)]
    if partner is not None:
        limits.append((pair_key(partner, address), policy.max_pair_failures))
        limits.append((f"partner:{partner}", policy.max_partner_failures))
    return limits


def blocked(current: FailureWindow | None, now: datetime, limit: int, window: timedelta) -> bool:
    """Locked, or its limit reached by failures (or attempts being checked) of the current window."""
    if current is None:
        return False
    return current.locked(now) or (current.current(now, window) and current.failures >= limit)


def taken(rows: Rows, limits: Limits, now: datetime, window: timedelta) -> dict[str, FailureWindow] | None:
    """One more attempt counted on every key (as a failure until ``forgiven``), or None when a key is
    blocked: then nothing is counted and the attempt must be refused unchecked."""
    if any(blocked(rows.get(key), now, limit, window) for key, limit in limits):
        return None
    counted = {}
    for key, _ in limits:
        current = rows.get(key)
        if current is None:
            counted[key] = FailureWindow(1, now)
        elif not current.current(now, window):
            counted[key] = replace(current, failures=1, window_start=now)
        else:
            counted[key] = replace(current, failures=current.failures + 1)
    return counted


def locked_at_limit(rows: Rows, limits: Limits, now: datetime, backoff: Backoff) -> dict[str, FailureWindow]:
    """The keys a failed attempt locks: those not locked whose failures reached their limit in the window."""
    locked = {}
    for key, limit in limits:
        current = rows.get(key)
        if current is None or current.locked(now) or not current.current(now, backoff.longest):
            continue
        if current.failures >= limit:
            recent = current.locked_until is not None and current.locked_until > now - backoff.longest
            strikes = current.strikes if recent else 0
            locked[key] = FailureWindow(0, now, now + backoff.lock_for(strikes), strikes + 1)
    return locked


def after_failure(
    rows: Rows, limits: Limits, now: datetime, backoff: Backoff, *, already_taken: bool = False
) -> tuple[dict[str, FailureWindow], list[str]]:
    """A failed attempt: counted (unless ``already_taken`` counted it before its check, or a key is
    blocked), then the keys at their limit locked. Returns the rows changed and the keys it locked."""
    changed: dict[str, FailureWindow] = {}
    if not already_taken:
        changed = taken(rows, limits, now, backoff.longest) or {}
    locks = locked_at_limit({**rows, **changed}, limits, now, backoff)
    return {**changed, **locks}, list(locks)


def forgiven(rows: Rows, key: str, refund_keys: Sequence[str]) -> dict[str, FailureWindow | None]:
    """A success on ``key``: its failures and strikes forgotten and taken off each of ``refund_keys``.
    Returns the rows changed: None drops a row (kept with its lock, if it has one, until the lock is old);
    empty when there is nothing to forget."""
    current = rows.get(key)
    if current is None or (current.failures == 0 and current.strikes == 0):
        return {}
    changed: dict[str, FailureWindow | None] = {
        key: None if current.locked_until is None else replace(current, failures=0, strikes=0)
    }
    for other in refund_keys:
        row = rows.get(other)
        if row is not None and row.failures > 0:
            changed[other] = replace(row, failures=max(0, row.failures - current.failures))
    return changed
