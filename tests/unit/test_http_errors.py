"""The one table of engine errors → HTTP statuses and error codes (STYLE rule 8)."""

from __future__ import annotations

import inspect

from engine import errors
from engine.status import FlowEvent, FlowStatus, InvalidTransition
from gateway.http.errors import ERROR_TABLE, GENERIC_INTERNAL, TooManyRequests, Unauthenticated, mapped


def _engine_error_classes() -> list[type[errors.EngineError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.EngineError) and cls.__module__ == errors.__name__
    ]


def test_every_engine_error_class_has_its_own_row() -> None:
    named = {cls for cls, _, _, _ in ERROR_TABLE}
    missing = [cls.__name__ for cls in _engine_error_classes() if cls not in named]
    assert not missing, f"map these engine errors in gateway/http/errors.py: {missing}"


def test_the_table_lists_subclasses_before_their_parents() -> None:
    classes = [cls for cls, _, _, _ in ERROR_TABLE]
    for i, cls in enumerate(classes):
        for earlier in classes[:i]:
            assert not issubclass(cls, earlier), f"{cls.__name__} is shadowed by {earlier.__name__}"


def test_domain_errors_map_to_their_statuses() -> None:
    """Sizes are 413 naming the limit; a hidden flow is 404 like a missing one; a second grant is 409 with
    the portal's sentence; the store's inside never reaches the caller."""
    too_large = mapped(errors.FlowTooLarge(10, 5))
    assert too_large is not None and too_large.status == 413 and "5 bytes" in too_large.message
    hidden = mapped(errors.FlowNotFound("X"))
    assert hidden is not None and (hidden.status, hidden.code) == (404, "FLOW_NOT_FOUND")
    twice = mapped(errors.ProfileAlreadyGranted())
    assert twice is not None and twice.status == 409
    assert twice.message == "The user already has the selected subscription"
    store = mapped(errors.StoreError("disk I/O error at page 12"))
    assert store is not None and store.status == 503 and "page 12" not in store.message
    internal = mapped(errors.EngineError("inside detail"))
    assert internal is not None and internal.status == 500 and internal.message == GENERIC_INTERNAL
    transition = mapped(InvalidTransition(FlowStatus.INTEGRATED, FlowEvent.ADMIN_RELEASE))
    assert transition is not None and transition.status == 409


def test_gateway_refusals_carry_their_headers() -> None:
    unauthenticated = mapped(Unauthenticated("no token", error=""))
    assert unauthenticated is not None and unauthenticated.headers == {"WWW-Authenticate": 'Bearer realm="fluxdepot"'}
    limited = mapped(TooManyRequests(3))
    assert limited is not None and limited.status == 429 and limited.headers == {"Retry-After": "3"}
    assert mapped(ValueError("x")) is None  # not in the table: a generic 500, logged
