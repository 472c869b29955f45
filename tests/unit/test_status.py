"""The status machine: every (status, event) pair against the one transition table (STYLE rule 5)."""

from __future__ import annotations

import itertools

import pytest

from engine.status import (
    FINAL_STATUSES,
    TRANSITIONS,
    FlowEvent,
    FlowStatus,
    InvalidTransition,
    advance,
    verdict_event,
)

S = FlowStatus
E = FlowEvent

# The table of DESIGN §4, written out by hand so a change to engine/status.py must be made twice.
EXPECTED: dict[tuple[FlowStatus, FlowEvent], FlowStatus] = {
    (S.RECEIVED, E.TRANSPORT_CHECKED): S.PROCESSED_SE_CPP,
    (S.RECEIVED, E.TECHNICAL_REJECTION): S.REJECTED,
    (S.RECEIVED, E.SYSTEM_FAILURE): S.WARNING,
    (S.RECEIVED, E.HOLD): S.WAITING_FOR_REPROCESSING,
    (S.PROCESSED_SE_CPP, E.QUEUED): S.WAITING_FOR_PROCESSING,
    (S.PROCESSED_SE_CPP, E.SYSTEM_FAILURE): S.WARNING,
    (S.PROCESSED_SE_CPP, E.HOLD): S.WAITING_FOR_REPROCESSING,
    (S.WAITING_FOR_PROCESSING, E.CLAIMED): S.IN_PROGRESS,
    (S.WAITING_FOR_PROCESSING, E.SYSTEM_FAILURE): S.WARNING,
    (S.WAITING_FOR_PROCESSING, E.HOLD): S.WAITING_FOR_REPROCESSING,
    (S.IN_PROGRESS, E.TECHNICAL_REJECTION): S.REJECTED,
    (S.IN_PROGRESS, E.ALL_INTEGRATED): S.INTEGRATED,
    (S.IN_PROGRESS, E.SOME_INTEGRATED): S.PARTIALLY_INTEGRATED,
    (S.IN_PROGRESS, E.NONE_INTEGRATED): S.REJECTED,
    (S.IN_PROGRESS, E.LEASE_EXPIRED): S.WAITING_FOR_PROCESSING,
    (S.IN_PROGRESS, E.SYSTEM_FAILURE): S.WARNING,
    (S.IN_PROGRESS, E.HOLD): S.WAITING_FOR_REPROCESSING,
    (S.WAITING_FOR_REPROCESSING, E.ADMIN_RELEASE): S.WAITING_FOR_PROCESSING,
    (S.WAITING_FOR_REPROCESSING, E.ADMIN_CLOSE): S.WARNING,
    (S.WARNING, E.ADMIN_REPROCESS): S.WAITING_FOR_PROCESSING,
}

ALL_PAIRS = list(itertools.product(FlowStatus, FlowEvent))


def test_table_is_exactly_the_documented_one() -> None:
    """The engine's transition table holds exactly the transitions DESIGN §4 allows."""
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("status", "event"), ALL_PAIRS, ids=lambda v: v.name)
def test_every_pair_advances_or_raises(status: FlowStatus, event: FlowEvent) -> None:
    """Every (status, event) pair either advances to the documented status or raises InvalidTransition."""
    if (status, event) in EXPECTED:
        assert advance(status, event) is EXPECTED[(status, event)]
    else:
        with pytest.raises(InvalidTransition) as caught:
            advance(status, event)
        assert caught.value.status is status
        assert caught.value.event is event
        assert str(caught.value).startswith(f"a flow in status {status.name} ({status.label_fr}) cannot ")


REFUSED_PAIRS = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


@pytest.mark.parametrize(("status", "event"), REFUSED_PAIRS, ids=lambda v: v.name)
def test_refusals_never_name_an_internal_event(status: FlowStatus, event: FlowEvent) -> None:
    """The message of every refused (status, event) pair is a sentence a user reads: it names the status
    with its label and the statuses the action is allowed from, and no event's internal value or name
    (``admin_release``, ``HOLD``, ``queued``...) appears in it."""
    message = str(InvalidTransition(status, event))
    for any_event in FlowEvent:
        assert any_event.value not in message.lower(), (any_event, message)
        assert any_event.name not in message, (any_event, message)
    allowed = [s for s in FlowStatus if (s, event) in EXPECTED]
    assert allowed and all(f"{s.name} ({s.label_fr})" in message.split("; only ", 1)[1] for s in allowed)


def test_refusing_to_release_a_rejected_flow_reads_as_a_sentence() -> None:
    """The refusal a manager meets when releasing a rejected flow says what and why, in words."""
    assert str(InvalidTransition(S.REJECTED, E.ADMIN_RELEASE)) == (
        "a flow in status REJECTED (Rejeté) cannot be released; "
        "only a flow in status WAITING_FOR_REPROCESSING (En attente de retraitement) can"
    )


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES, key=lambda s: s.name), ids=lambda s: s.name)
def test_final_statuses_only_leave_by_admin_reprocess(status: FlowStatus) -> None:
    """A final status is left only by ADMIN_REPROCESS (and only from WARNING), never by a worker event."""
    leaving = {event for (s, event) in TRANSITIONS if s is status}
    assert leaving <= {E.ADMIN_REPROCESS}
    assert (E.ADMIN_REPROCESS in leaving) == (status is S.WARNING)


def test_final_statuses_match_design() -> None:
    """WARNING, REJECTED, INTEGRATED and PARTIALLY_INTEGRATED are final; every other status is not."""
    assert {s for s in FlowStatus if s.is_final} == {
        S.WARNING,
        S.REJECTED,
        S.INTEGRATED,
        S.PARTIALLY_INTEGRATED,
    }


def test_every_status_is_reachable_from_received() -> None:
    """Walking the table from RECEIVED reaches all nine statuses (no dead entry in the enum)."""
    reached = {S.RECEIVED}
    frontier = [S.RECEIVED]
    while frontier:
        current = frontier.pop()
        for (source, _event), target in TRANSITIONS.items():
            if source is current and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(FlowStatus)


def test_codes_labels_and_parse() -> None:
    """Each status has its Chorus Pro code and French label; parse accepts names, codes and proto names."""
    assert S.PARTIALLY_INTEGRATED.code == "IN_INTEGRE_PARTIEL"
    assert S.WARNING.label_fr == "Incidenté"
    for status in FlowStatus:
        assert FlowStatus.from_code(status.code) is status
        assert FlowStatus.parse(status.name) is status
        assert FlowStatus.parse(f"FLOW_STATUS_{status.name}") is status
        assert FlowStatus.parse(status.code) is status
        assert status.label_fr and status.label_en


@pytest.mark.parametrize(
    ("integrated", "rejected", "event"),
    [
        (3, 0, E.ALL_INTEGRATED),
        (2, 1, E.SOME_INTEGRATED),
        (0, 4, E.NONE_INTEGRATED),
        (0, 0, E.NONE_INTEGRATED),
    ],
)
def test_verdict_event(integrated: int, rejected: int, event: FlowEvent) -> None:
    """The closing event follows the counts; no invoice at all is never 'integrated'."""
    assert verdict_event(integrated, rejected) is event
