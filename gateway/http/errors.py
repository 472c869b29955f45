"""Engine errors → HTTP statuses and error codes, in exactly one table (STYLE rule 8), like
``gateway.grpc_errors`` for gRPC.

The table is searched in order and the first class that matches wins, so the most specific classes come
first. The body is the AFNOR ``Error`` object, ``{"errorCode": ..., "errorMessage": ...}``, on every
route (the AFNOR Flow Service and our own JSON API alike). Anything not in the table is a 500 with a
generic message; its traceback is logged with the request id. ``tests/unit/test_http_errors.py`` proves
every class of ``engine.errors`` is in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import errors as e
from engine.status import InvalidTransition

GENERIC_INTERNAL = "internal error; the server logged the details under this request's X-Request-Id"


class HttpError(Exception):
    """A gateway-side refusal of a request (not an engine error): a bad field, no credentials, too many
    requests. ``headers`` go into the response (``WWW-Authenticate``, ``Retry-After``)."""

    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidField(HttpError):
    """A request field is missing or malformed; the message names it."""

    code = "INVALID_FIELD"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class Unauthenticated(HttpError):
    status = 401
    code = "UNAUTHENTICATED"

    def __init__(self, message: str, *, error: str = "invalid_token") -> None:
        # RFC 6750 §3: the challenge names the scheme and, once a token was sent, why it failed.
        challenge = 'Bearer realm="fluxdepot"' + (f', error="{error}"' if error else "")
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(HttpError):
    status = 403
    code = "FORBIDDEN"


class NotFoundHere(HttpError):
    status = 404
    code = "NOT_FOUND"


class BodyTooLarge(HttpError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the request body is larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class TooManyRequests(HttpError):
    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests; retry in {retry_after_s} s", headers={"Retry-After": str(retry_after_s)})


class Unavailable(HttpError):
    status = 503
    code = "UNAVAILABLE"


@dataclass(frozen=True)
class Mapped:
    status: int
    code: str
    message: str
    headers: dict[str, str]


# (exception class, HTTP status, error code, message). A message of None sends the exception's own.
ERROR_TABLE: tuple[tuple[type[BaseException], int, str, str | None], ...] = (
    (e.InvalidDepositRequest, 400, "INVALID_FIELD", None),
    (e.FlowTooLarge, 413, "FILE_SIZE_EXCEEDED", None),
    (e.ChecksumMismatch, 400, "CHECKSUM_MISMATCH", None),
    (e.IssuerNotAllowed, 403, "ISSUER_NOT_ALLOWED", None),
    (e.DepositRefused, 400, "DEPOSIT_REFUSED", None),
    (e.FlowNotFound, 404, "FLOW_NOT_FOUND", None),
    (e.DirectoryEntryNotFound, 404, "NOT_FOUND", None),
    (e.NotFound, 404, "NOT_FOUND", None),
    (e.ProfileAlreadyGranted, 409, "PROFILE_ALREADY_GRANTED", None),
    (e.AlreadyExists, 409, "ALREADY_EXISTS", None),
    (e.PermissionDenied, 403, "FORBIDDEN", None),
    (e.RulesetUnavailable, 409, "RULESET_UNAVAILABLE", None),
    (e.InvoiceAlreadyIntegrated, 409, "CONFLICT", None),  # a race inside processing: retry
    (e.StatusConflict, 409, "STATUS_CONFLICT", None),
    (e.StorageFull, 507, "STORAGE_FULL", None),
    (e.StoreUnavailable, 503, "UNAVAILABLE", "the database is unreachable; nothing was recorded, retry later"),
    (e.StoreError, 503, "UNAVAILABLE", "the store failed; retry later"),
    (e.EngineError, 500, "INTERNAL_ERROR", GENERIC_INTERNAL),
    (InvalidTransition, 409, "STATUS_CONFLICT", None),
)


def mapped(exc: BaseException) -> Mapped | None:
    """The response for ``exc``, or None when no row of the table matches (a 500, logged)."""
    if isinstance(exc, HttpError):
        return Mapped(exc.status, exc.code, exc.message, exc.headers)
    for cls, status, code, message in ERROR_TABLE:
        if isinstance(exc, cls):
            return Mapped(status, code, message if message is not None else str(exc), {})
    return None


def error_body(code: str, message: str) -> dict[str, str]:
    """The AFNOR ``Error`` object."""
    return {"errorCode": code, "errorMessage": message}
