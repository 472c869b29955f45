"""The hash chain of status events (DESIGN §4): each event stores the hash of the previous one of its flow.

Pure: the store calls ``event_hash`` when it appends an event; ``verify_chain`` proves a history was not
rewritten (``fluxdepot admin verify-audit``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from engine.model import StatusChange

GENESIS = "0" * 64


def event_hash(
    prev_hash: str,
    flow_number: str,
    seq: int,
    status_code: str,
    event: str,
    at_iso: str,
    actor: str,
    detail: str | None,
) -> str:
    """SHA-256 over the previous hash and the event's fields, unambiguously separated."""
    parts = (prev_hash, flow_number, str(seq), status_code, event, at_iso, actor, detail or "")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def hash_of(change: StatusChange) -> str:
    return event_hash(
        change.prev_hash,
        change.flow_number,
        change.seq,
        change.status.code,
        change.event.value if change.event else "",
        change.at.isoformat(),
        change.actor,
        change.detail,
    )


@dataclass(frozen=True)
class ChainBreak:
    flow_number: str
    seq: int
    reason: str


def verify_chain(history: Iterable[StatusChange]) -> list[ChainBreak]:
    """Check one flow's events in ``seq`` order; return every break found."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    expected_seq = 1
    for change in history:
        if change.seq != expected_seq:
            breaks.append(ChainBreak(change.flow_number, change.seq, f"expected seq {expected_seq}"))
        if change.prev_hash != prev:
            breaks.append(ChainBreak(change.flow_number, change.seq, "prev_hash does not match"))
        if hash_of(change) != change.hash:
            breaks.append(ChainBreak(change.flow_number, change.seq, "hash does not match the content"))
        prev = change.hash
        expected_seq = change.seq + 1
    return breaks
