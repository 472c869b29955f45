"""Webhooks (issue 18): subscriptions to flows' status changes, their deliveries, and the pure rules the
runner (``gateway.webhooks``) and the store follow — scope, backoff, signature, our own body.

* A subscription belongs to a structure, a technical user or an EDI partner (its *owner*) and only ever
  receives changes of flows its owner may see (``engine.permissions.Visibility``): a structure's are the
  flows it issues, a technical user's or partner's the flows it deposited (``scope_of``). It names the
  statuses it wants (empty: all) and a body format: ``fluxdepot`` (``fluxdepot_body``) or ``afnor``
  (the AFNOR ``WebhookCallbackContent``, ``{"flowInfo": <Flow>}``, rendered by the gateway).
* Each matching status event becomes a delivery in the transaction that records it (a transactional
  outbox, written by the store's migration 0008 triggers): nothing committed is lost across a crash.
* A delivery is sent at least once (``X-Fluxdepot-Delivery`` lets the receiver drop duplicates), in order
  per flow and subscription (a later one waits while an earlier one is pending), retried with full-jitter
  exponential backoff (``retry_delay``) until ``retry_for_s`` after its first attempt, then dead
  (redeliverable).
* ``sign``: ``X-Fluxdepot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from engine.model import FlowRecord
from engine.permissions import Visibility
from engine.status import FlowStatus

SIGNATURE_HEADER = "X-Fluxdepot-Signature"
DELIVERY_HEADER = "X-Fluxdepot-Delivery"
EVENT_HEADER = "X-Fluxdepot-Event"
EVENT_NAME = "flow.status_changed"
MAX_URL_CHARS = 2000
MAX_ERROR_CHARS = 500  # last_error kept per delivery


class WebhookFormat(enum.Enum):
    FLUXDEPOT = "fluxdepot"
    AFNOR = "afnor"


class OwnerKind(enum.Enum):
    STRUCTURE = "structure"
    TECHNICAL = "technical"
    PARTNER = "partner"


class DeliveryState(enum.Enum):
    PENDING = "pending"  # to send, or waiting for its next attempt
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after retry_for_s; redeliverable


@dataclass(frozen=True)
class Scope:
    """The flows a subscription may receive: those of ``issuer`` or those ``depositor`` deposited."""

    issuer: str | None = None
    depositor: str | None = None

    def visibility(self) -> Visibility:
        return Visibility(sirets=frozenset({self.issuer} if self.issuer else ()), depositor=self.depositor)


def scope_of(kind: OwnerKind, owner: str) -> Scope:
    """What an owner sees (``engine.permissions.visibility_of`` of that owner): a structure its issued
    flows; a technical user (login) or partner (code) the flows it deposited."""
    if kind is OwnerKind.STRUCTURE:
        return Scope(issuer=owner)
    prefix = "tech" if kind is OwnerKind.TECHNICAL else "partner"
    return Scope(depositor=f"{prefix}:{owner}")


@dataclass(frozen=True)
class NewSubscription:
    siret: str  # the structure it belongs to
    owner_kind: OwnerKind
    owner: str
    url: str
    secret: str
    statuses: tuple[FlowStatus, ...]  # empty: every status
    format: WebhookFormat
    created_at: datetime
    created_by: str  # the depositor-style name of who created it

    @property
    def scope(self) -> Scope:
        return scope_of(self.owner_kind, self.owner)


@dataclass(frozen=True)
class Subscription(NewSubscription):
    id: int = 0

    def wants(self, status: FlowStatus, issuer_siret: str, depositor: str) -> bool:
        """Whether a change of a flow to ``status`` is delivered to it (what the store's trigger does)."""
        if self.statuses and status not in self.statuses:
            return False
        return self.scope.visibility().allows(issuer_siret, depositor)


@dataclass(frozen=True)
class Delivery:
    """One status change to send to one subscription (with what the runner needs of the subscription)."""

    id: int
    subscription_id: int
    flow_number: str
    seq: int
    cursor: int
    issuer_siret: str
    depositor: str
    status: FlowStatus
    previous_status: FlowStatus | None
    at: datetime
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    url: str = ""
    secret: str = ""
    format: WebhookFormat = WebhookFormat.FLUXDEPOT


@dataclass(frozen=True)
class Attempt:
    """An attempt's outcome: delivered (``error`` None), retried at ``next_attempt_at``, or dead (an
    error and no next attempt)."""

    delivery_id: int
    at: datetime
    next_attempt_at: datetime | None
    error: str | None

    @property
    def state(self) -> DeliveryState:
        if self.error is None:
            return DeliveryState.DELIVERED
        return DeliveryState.PENDING if self.next_attempt_at is not None else DeliveryState.DEAD


@dataclass(frozen=True)
class Backoff:
    """[webhooks] retry settings: delays double from ``first_retry_s`` up to ``max_retry_s``; the
    delivery is dead once ``retry_for_s`` have passed since its first attempt."""

    first_retry_s: float
    max_retry_s: float
    retry_for_s: float


def retry_delay(backoff: Backoff, attempts: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(max, first * 2^(attempts-1))] after the ``attempts``-th failure
    (so retries of many deliveries to a receiver that came back spread out instead of stampeding)."""
    cap = min(backoff.max_retry_s, backoff.first_retry_s * 2 ** min(max(attempts - 1, 0), 60))
    return (rng or random).uniform(0, cap)


def after_failure(
    backoff: Backoff, delivery: Delivery, now: datetime, rng: random.Random | None = None
) -> datetime | None:
    """When to try again after a failed attempt at ``now``; None: give up (dead-letter)."""
    first = delivery.first_attempt_at or now
    deadline = first + timedelta(seconds=backoff.retry_for_s)
    if now >= deadline:
        return None
    return min(now + timedelta(seconds=retry_delay(backoff, delivery.attempts + 1, rng)), deadline)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Fluxdepot-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the header's v1 is the HMAC of its t and the body, and t is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(expected, fields.get("v1", ""))


def iso_ms(at: datetime) -> str:
    """ISO 8601 UTC with milliseconds, as every body carries times."""
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fluxdepot_body(delivery: Delivery) -> dict[str, Any]:
    """Our own event body."""
    previous = delivery.previous_status
    return {
        "delivery_id": delivery.id,
        "flow_number": delivery.flow_number,
        "issuer_siret": delivery.issuer_siret,
        "status": delivery.status.name,
        "status_code": delivery.status.code,
        "label_fr": delivery.status.label_fr,
        "previous_status": previous.name if previous is not None else None,
        "at": iso_ms(delivery.at),
        "cursor": delivery.cursor,
    }


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookStore(Protocol):
    """What the delivery runner uses of ``engine.store.port.Store`` (see there for each)."""

    async def claim_deliveries(
        self,
        owner: str,
        *,
        now: datetime,
        lease_s: float,
        limit: int,
        per_subscription: int,
        busy: Sequence[int] = (),
    ) -> list[Delivery]: ...

    async def record_delivery_attempts(self, owner: str, attempts: Sequence[Attempt]) -> int: ...

    async def get_flow(self, flow_number: str) -> FlowRecord | None: ...

    async def latest_cursor(self) -> int: ...

    async def wait_for_events(self, cursor: int, timeout_s: float) -> None: ...

    async def purge_settled_deliveries(self, before: datetime) -> int: ...

    async def try_singleton(self, name: str) -> bool: ...

    async def release_singleton(self, name: str) -> None: ...


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot receive webhooks (None when it can): an absolute http(s) URL with a host."""
    if len(url) > MAX_URL_CHARS:
        return f"longer than {MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an absolute http:// or https:// URL"
    if any(c.isspace() for c in url):
        return "contains white space"
    return None


def parse_format(value: str) -> WebhookFormat:
    """A body format by name; empty is ``fluxdepot`` (``ValueError`` names the choices)."""
    try:
        return WebhookFormat(value.strip().lower() or WebhookFormat.FLUXDEPOT.value)
    except ValueError:
        raise ValueError("must be 'fluxdepot' or 'afnor'") from None


def parse_owner_kind(value: str) -> OwnerKind | None:
    """An owner kind by name; empty is None (the calling technical user)."""
    if not value.strip():
        return None
    try:
        return OwnerKind(value.strip().lower())
    except ValueError:
        raise ValueError("must be 'structure', 'technical' or 'partner'") from None
