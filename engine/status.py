"""The flow status machine: the nine statuses, the events that move a flow, one transition table.

Rules (DESIGN §4):

* A flow is created ``RECEIVED`` once its bytes and row are durable.
* The worker moves it ``RECEIVED → PROCESSED_SE_CPP`` (transport checks passed) ``→ WAITING_FOR_PROCESSING``
  (queued) ``→ IN_PROGRESS`` (claimed under a lease) and then to a verdict: ``INTEGRATED``,
  ``PARTIALLY_INTEGRATED`` or ``REJECTED``. A transport-level (technical) failure rejects straight from
  ``RECEIVED``; a content-level technical failure (XSD) rejects from ``IN_PROGRESS``.
* ``WARNING`` means the system, not the content, failed; it is final (the depositor re-deposits).
* A lease that expires once puts an ``IN_PROGRESS`` flow back to ``WAITING_FOR_PROCESSING``; the second
  time it is held in ``WAITING_FOR_REPROCESSING`` for an operator, who releases or closes it.
* Nothing leaves a final status except ``ADMIN_REPROCESS`` from ``WARNING``, an explicit, recorded
  administrator action.

This module is pure: no I/O, nothing async. ``advance()`` is the only way code computes a next status.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class FlowStatus(enum.Enum):
    """A flow's status; ``code`` is Chorus Pro's ``etatCourantFlux``."""

    RECEIVED = "IN_RECU"
    PROCESSED_SE_CPP = "IN_TRAITE_SE_CPP"
    WAITING_FOR_PROCESSING = "IN_EN_ATTENTE_TRAITEMENT_CPP"
    IN_PROGRESS = "IN_EN_COURS_TRAITEMENT_CPP"
    WARNING = "IN_INCIDENTE"
    REJECTED = "IN_REJETE"
    WAITING_FOR_REPROCESSING = "IN_EN_ATTENTE_RETRAITEMENT_CPP"
    INTEGRATED = "IN_INTEGRE"
    PARTIALLY_INTEGRATED = "IN_INTEGRE_PARTIEL"

    @property
    def code(self) -> str:
        return self.value

    @property
    def label_fr(self) -> str:
        return _LABELS_FR[self]

    @property
    def label_en(self) -> str:
        return _LABELS_EN[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @classmethod
    def from_code(cls, code: str) -> FlowStatus:
        return cls(code)

    @classmethod
    def parse(cls, text: str) -> FlowStatus:
        """Accept an enum name (``INTEGRATED``), a code (``IN_INTEGRE``) or a protobuf name."""
        key = text.strip().upper().removeprefix("FLOW_STATUS_")
        if key in cls.__members__:
            return cls[key]
        return cls(key)


_LABELS_FR = {
    FlowStatus.RECEIVED: "Reçu",
    FlowStatus.PROCESSED_SE_CPP: "Traité SE CPP",
    FlowStatus.WAITING_FOR_PROCESSING: "En attente de traitement",
    FlowStatus.IN_PROGRESS: "En cours de traitement",
    FlowStatus.WARNING: "Incidenté",
    FlowStatus.REJECTED: "Rejeté",
    FlowStatus.WAITING_FOR_REPROCESSING: "En attente de retraitement",
    FlowStatus.INTEGRATED: "Intégré",
    FlowStatus.PARTIALLY_INTEGRATED: "Intégré partiel",
}

_LABELS_EN = {
    FlowStatus.RECEIVED: "Received",
    FlowStatus.PROCESSED_SE_CPP: "Processed SE CPP",
    FlowStatus.WAITING_FOR_PROCESSING: "Waiting for processing",
    FlowStatus.IN_PROGRESS: "In progress",
    FlowStatus.WARNING: "Warning",
    FlowStatus.REJECTED: "Rejected",
    FlowStatus.WAITING_FOR_REPROCESSING: "Waiting for reprocessing",
    FlowStatus.INTEGRATED: "Integrated",
    FlowStatus.PARTIALLY_INTEGRATED: "Partially integrated",
}

FINAL_STATUSES = frozenset(
    {FlowStatus.WARNING, FlowStatus.REJECTED, FlowStatus.INTEGRATED, FlowStatus.PARTIALLY_INTEGRATED}
)


class FlowEvent(enum.Enum):
    """What happened to a flow; the table below says where it takes the flow."""

    TRANSPORT_CHECKED = "transport_checked"  # not empty, unpacked safely, well-formed, supported syntax
    QUEUED = "queued"
    CLAIMED = "claimed"
    TECHNICAL_REJECTION = "technical_rejection"
    ALL_INTEGRATED = "all_integrated"
    SOME_INTEGRATED = "some_integrated"
    NONE_INTEGRATED = "none_integrated"
    SYSTEM_FAILURE = "system_failure"
    LEASE_EXPIRED = "lease_expired"  # first expiry: back to the queue
    HOLD = "hold"  # second expiry, quarantine or an operator's hold
    ADMIN_RELEASE = "admin_release"
    ADMIN_CLOSE = "admin_close"
    ADMIN_REPROCESS = "admin_reprocess"


S = FlowStatus
E = FlowEvent

_NOT_FINAL = (S.RECEIVED, S.PROCESSED_SE_CPP, S.WAITING_FOR_PROCESSING, S.IN_PROGRESS)

TRANSITIONS: dict[tuple[FlowStatus, FlowEvent], FlowStatus] = {
    (S.RECEIVED, E.TRANSPORT_CHECKED): S.PROCESSED_SE_CPP,
    (S.RECEIVED, E.TECHNICAL_REJECTION): S.REJECTED,
    (S.PROCESSED_SE_CPP, E.QUEUED): S.WAITING_FOR_PROCESSING,
    (S.WAITING_FOR_PROCESSING, E.CLAIMED): S.IN_PROGRESS,
    (S.IN_PROGRESS, E.TECHNICAL_REJECTION): S.REJECTED,
    (S.IN_PROGRESS, E.ALL_INTEGRATED): S.INTEGRATED,
    (S.IN_PROGRESS, E.SOME_INTEGRATED): S.PARTIALLY_INTEGRATED,
    (S.IN_PROGRESS, E.NONE_INTEGRATED): S.REJECTED,
    (S.IN_PROGRESS, E.LEASE_EXPIRED): S.WAITING_FOR_PROCESSING,
    **{(s, E.SYSTEM_FAILURE): S.WARNING for s in _NOT_FINAL},
    **{(s, E.HOLD): S.WAITING_FOR_REPROCESSING for s in _NOT_FINAL},
    (S.WAITING_FOR_REPROCESSING, E.ADMIN_RELEASE): S.WAITING_FOR_PROCESSING,
    (S.WAITING_FOR_REPROCESSING, E.ADMIN_CLOSE): S.WARNING,
    (S.WARNING, E.ADMIN_REPROCESS): S.WAITING_FOR_PROCESSING,
}

ADMIN_EVENTS = frozenset({E.ADMIN_RELEASE, E.ADMIN_CLOSE, E.ADMIN_REPROCESS})

# What each event does to a flow, as the end of "a flow in status X cannot ...": refusals are shown to
# people, who know statuses but not event names (no event's value may appear in these words).
_ACTIONS: dict[FlowEvent, str] = {
    E.TRANSPORT_CHECKED: "pass its transport checks",
    E.QUEUED: "be put in the processing queue",
    E.CLAIMED: "be taken up for processing",
    E.TECHNICAL_REJECTION: "be rejected for a technical error",
    E.ALL_INTEGRATED: "be integrated",
    E.SOME_INTEGRATED: "be partially integrated",
    E.NONE_INTEGRATED: "be rejected for its invoices",
    E.SYSTEM_FAILURE: "be set to warning after a system failure",
    E.LEASE_EXPIRED: "go back to the processing queue after an interrupted processing",
    E.HOLD: "be held for reprocessing",
    E.ADMIN_RELEASE: "be released",
    E.ADMIN_CLOSE: "be closed",
    E.ADMIN_REPROCESS: "be reprocessed",
}


def _named(status: FlowStatus) -> str:
    return f"{status.name} ({status.label_fr})"


class InvalidTransition(Exception):
    """The event is not allowed from the flow's current status.

    The message is a sentence for people: the status with its label, what could not be done, and from
    which statuses it can (e.g. "a flow in status REJECTED (Rejeté) cannot be released; only a flow in
    status WAITING_FOR_REPROCESSING (En attente de retraitement) can"); it never names the event.
    (A plain exception, not a frozen dataclass: frameworks set ``__traceback__`` on what they catch.)
    """

    def __init__(self, status: FlowStatus, event: FlowEvent) -> None:
        super().__init__(status, event)
        self.status = status
        self.event = event

    def __str__(self) -> str:
        refusal = f"a flow in status {_named(self.status)} cannot {_ACTIONS[self.event]}"
        allowed = [_named(s) for s in FlowStatus if (s, self.event) in TRANSITIONS]
        if not allowed:
            return refusal
        listed = allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1]) + " or " + allowed[-1]
        return f"{refusal}; only a flow in status {listed} can"


def advance(status: FlowStatus, event: FlowEvent) -> FlowStatus:
    """Return the status ``event`` leads to from ``status``, or raise ``InvalidTransition``."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


def events_of(event: FlowEvent | Sequence[FlowEvent]) -> tuple[FlowEvent, ...]:
    """One event or several, as a non-empty tuple (``ValueError`` when empty)."""
    events = (event,) if isinstance(event, FlowEvent) else tuple(event)
    if not events:
        raise ValueError("at least one event is needed")
    return events


def walk(status: FlowStatus, events: Sequence[FlowEvent]) -> FlowStatus:
    """The status reached by applying ``events`` in order from ``status`` (``InvalidTransition`` on
    the first that is not allowed)."""
    for event in events:
        status = advance(status, event)
    return status


def verdict_event(integrated: int, rejected: int) -> FlowEvent:
    """The event that closes a flow whose invoices were judged (after the rejection rule applied)."""
    if integrated and rejected:
        return E.SOME_INTEGRATED
    if integrated:
        return E.ALL_INTEGRATED
    return E.NONE_INTEGRATED
