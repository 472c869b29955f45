"""The hash chain of status events: a faithful history verifies, any rewrite is detected."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.audit import GENESIS, event_hash, hash_of, verify_chain
from engine.model import StatusChange
from engine.status import FlowEvent, FlowStatus

FLOW = "AAA0011100000000000000042"
T0 = datetime(2026, 11, 2, 15, 10, 25, tzinfo=UTC)
STEPS: list[tuple[FlowStatus, FlowEvent | None, str]] = [
    (FlowStatus.RECEIVED, None, "partner:AAA001"),
    (FlowStatus.PROCESSED_SE_CPP, FlowEvent.TRANSPORT_CHECKED, "worker:w1"),
    (FlowStatus.WAITING_FOR_PROCESSING, FlowEvent.QUEUED, "worker:w1"),
    (FlowStatus.IN_PROGRESS, FlowEvent.CLAIMED, "worker:w1"),
    (FlowStatus.INTEGRATED, FlowEvent.ALL_INTEGRATED, "worker:w1"),
]


def chain() -> list[StatusChange]:
    """A correctly chained history, built by hand the way the store appends it."""
    changes: list[StatusChange] = []
    prev = GENESIS
    for seq, (status, event, actor) in enumerate(STEPS, start=1):
        draft = StatusChange(FLOW, seq, status, event, T0 + timedelta(seconds=seq), actor, None, prev, "")
        change = replace(draft, hash=hash_of(draft))
        changes.append(change)
        prev = change.hash
    return changes


def test_faithful_history_verifies() -> None:
    """A history whose every entry hashes its fields and its predecessor has no break."""
    history = chain()
    assert verify_chain(history) == []
    assert history[0].prev_hash == GENESIS
    assert verify_chain([]) == []


def test_edited_field_is_detected() -> None:
    """Changing an entry's status, actor or detail breaks its own hash."""
    for change in ({"status": FlowStatus.REJECTED}, {"actor": "admin:mallory"}, {"detail": "edited"}):
        history = chain()
        history[4] = replace(history[4], **change)  # type: ignore[arg-type]
        breaks = verify_chain(history)
        assert [(b.seq, b.reason) for b in breaks] == [(5, "hash does not match the content")]


def test_rehashed_entry_breaks_the_next_link() -> None:
    """Rewriting an entry and recomputing its hash is caught by the next entry's prev_hash."""
    history = chain()
    forged = replace(history[1], actor="admin:mallory")
    history[1] = replace(forged, hash=hash_of(forged))
    breaks = verify_chain(history)
    assert [(b.seq, b.reason) for b in breaks] == [(3, "prev_hash does not match")]


def test_removed_or_reordered_entries_are_detected() -> None:
    """Dropping or swapping entries shows as a seq gap and a broken link."""
    history = chain()
    del history[2]
    reasons = {(b.seq, b.reason) for b in verify_chain(history)}
    assert (4, "expected seq 3") in reasons and (4, "prev_hash does not match") in reasons
    swapped = chain()
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert verify_chain(swapped)


def test_fields_are_unambiguously_separated() -> None:
    """Moving text between adjacent fields changes the hash."""
    a = event_hash(GENESIS, FLOW, 1, "IN_RECU", "", "t", "ab", "c")
    b = event_hash(GENESIS, FLOW, 1, "IN_RECU", "", "t", "a", "bc")
    assert a != b
