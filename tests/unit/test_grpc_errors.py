"""The one table of engine errors → gRPC status codes (STYLE rule 8)."""

from __future__ import annotations

import inspect

import grpc

from engine import errors
from engine.status import FlowEvent, FlowStatus, InvalidTransition
from gateway.grpc_errors import ERROR_TABLE, GENERIC_INTERNAL, InvalidArgument, Unauthenticated, status_for


def _engine_error_classes() -> list[type[errors.EngineError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.EngineError) and cls.__module__ == errors.__name__
    ]


def test_every_engine_error_class_has_its_own_row() -> None:
    """Each class of engine.errors is named in the table, so none falls through to a generic INTERNAL."""
    named = {cls for cls, _, _ in ERROR_TABLE}
    missing = [cls.__name__ for cls in _engine_error_classes() if cls not in named]
    assert not missing, f"map these engine errors in gateway/grpc_errors.py: {missing}"


def test_the_table_lists_subclasses_before_their_parents() -> None:
    """The first matching row wins: a row never sits after a row of one of its base classes."""
    classes = [cls for cls, _, _ in ERROR_TABLE]
    for i, cls in enumerate(classes):
        for earlier in classes[:i]:
            assert not issubclass(cls, earlier), f"{cls.__name__} is shadowed by {earlier.__name__}"


def test_domain_errors_map_to_the_codes_design_10_names() -> None:
    """Sizes are RESOURCE_EXHAUSTED naming the limit; a hidden flow is NOT_FOUND like a missing one; a
    second grant is ALREADY_EXISTS with the portal's sentence; bad fields name the field."""
    code, message = status_for(errors.FlowTooLarge(10, 5)) or (None, "")
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and "5 bytes" in message
    assert status_for(errors.FlowNotFound("X")) == (grpc.StatusCode.NOT_FOUND, "flow X not found")
    assert status_for(errors.ProfileAlreadyGranted()) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "The user already has the selected subscription",
    )
    code, message = status_for(errors.InvalidDepositRequest("file_name", "is required")) or (None, "")
    assert code is grpc.StatusCode.INVALID_ARGUMENT and message.startswith("file_name")
    assert status_for(InvalidArgument("page_token", "bad"))[0] is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[index]
    assert status_for(Unauthenticated("no"))[0] is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[index]
    invalid = InvalidTransition(FlowStatus.INTEGRATED, FlowEvent.ADMIN_RELEASE)
    assert status_for(invalid)[0] is grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[index]


def test_store_failures_do_not_leak_driver_details() -> None:
    """A store failure says "retry later", never the driver's text; unknown errors are not mapped."""
    code, message = status_for(errors.StoreError("the store failed: disk I/O error at /var/x")) or (None, "")
    assert code is grpc.StatusCode.UNAVAILABLE and "/var" not in message
    assert status_for(errors.EngineError("secret detail")) == (grpc.StatusCode.INTERNAL, GENERIC_INTERNAL)
    assert status_for(KeyError("x")) is None
