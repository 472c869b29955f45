"""Engine errors → gRPC status codes, in exactly one table (STYLE rule 8).

The table is searched in order and the first class that matches wins, so the most specific classes come
first. Anything not in it becomes ``INTERNAL`` with a generic message (the traceback is logged, the
caller learns nothing about the inside); ``tests/unit/test_grpc_errors.py`` proves that every class of
``engine.errors`` is in the table, so no engine error ever falls through.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
import structlog

from engine import errors as e
from engine.status import InvalidTransition

log = structlog.get_logger("fluxdepot.grpc")


class RequestError(Exception):
    """A gateway-side refusal of a request (not an engine error): a bad field, no credentials."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RequestError):
    """A request field is malformed; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class Unauthenticated(RequestError):
    """No usable bearer token."""

    code = grpc.StatusCode.UNAUTHENTICATED


GENERIC_INTERNAL = "internal error; the server logged the details"

# (exception class, status code, message). A message of None sends the exception's own message.
ERROR_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode, str | None], ...] = (
    (e.InvalidDepositRequest, grpc.StatusCode.INVALID_ARGUMENT, None),
    (e.FlowTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    (e.ChecksumMismatch, grpc.StatusCode.INVALID_ARGUMENT, None),
    (e.IssuerNotAllowed, grpc.StatusCode.PERMISSION_DENIED, None),
    (e.DepositRefused, grpc.StatusCode.INVALID_ARGUMENT, None),
    (e.FlowNotFound, grpc.StatusCode.NOT_FOUND, None),
    (e.DirectoryEntryNotFound, grpc.StatusCode.NOT_FOUND, None),
    (e.NotFound, grpc.StatusCode.NOT_FOUND, None),
    (e.ProfileAlreadyGranted, grpc.StatusCode.ALREADY_EXISTS, None),
    (e.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, None),
    (e.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, None),
    (e.RulesetUnavailable, grpc.StatusCode.FAILED_PRECONDITION, None),
    (e.InvoiceAlreadyIntegrated, grpc.StatusCode.ABORTED, None),  # a race inside processing: retry
    (e.StatusConflict, grpc.StatusCode.FAILED_PRECONDITION, None),
    (e.StorageFull, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    (e.StoreUnavailable, grpc.StatusCode.UNAVAILABLE, "the database is unreachable; nothing was recorded, retry later"),
    (e.StoreError, grpc.StatusCode.UNAVAILABLE, "the store failed; retry later"),
    (e.EngineError, grpc.StatusCode.INTERNAL, GENERIC_INTERNAL),
    (InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION, None),
    (RequestError, grpc.StatusCode.INVALID_ARGUMENT, None),  # code refined by the class, see status_for
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message for ``exc``, or None when no row of the table matches."""
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    for cls, code, message in ERROR_TABLE:
        if isinstance(exc, cls):
            return code, message if message is not None else str(exc)
    return None


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    """Abort the call with the status ``exc`` maps to; an unmapped error is INTERNAL and logged."""
    mapped = status_for(exc)
    if mapped is None:
        log.error("grpc_unhandled_error", method=method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, GENERIC_INTERNAL)
    code, message = mapped
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
        log.error("grpc_engine_error", method=method, code=code.name, exc_info=exc)
    await context.abort(code, message)
