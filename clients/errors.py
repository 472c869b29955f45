"""The client's exceptions: gRPC status codes turned back into Python (STYLE rule 12).

    FluxdepotError                 exit code 1 unless a subclass says otherwise
    ├── InvalidArgument            2   a request field was refused (the message names it)
    ├── Unauthenticated            3   no token, or a wrong or revoked one
    ├── PermissionDenied           4   the caller may not do this
    ├── NotFound                   5   no such flow (or one the caller may not see), user, structure...
    ├── AlreadyExists              6   e.g. "The user already has the selected subscription"
    ├── ResourceExhausted          7   over a size or rate limit (the message names the limit)
    ├── FailedPrecondition         8   e.g. a held-flow action on a flow that is not held
    ├── Unavailable                9   the server is down, shutting down or cannot reach its store
    ├── DeadlineExceeded          10   the call took longer than its timeout
    └── ServerError               11   the server failed (INTERNAL, UNKNOWN, ...)

``error_from_rpc`` is the one translation point; the CLI prints ``str(error)`` and exits ``exit_code``.
"""

from __future__ import annotations

import grpc


class FluxdepotError(Exception):
    """The fluxdepot server refused or failed the call."""

    exit_code = 1
    hint = ""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the gRPC status code name, e.g. NOT_FOUND


class InvalidArgument(FluxdepotError):
    exit_code = 2


class Unauthenticated(FluxdepotError):
    exit_code = 3
    hint = "pass a valid token with --token or the FLUXDEPOT_TOKEN environment variable"


class PermissionDenied(FluxdepotError):
    exit_code = 4


class NotFound(FluxdepotError):
    exit_code = 5


class AlreadyExists(FluxdepotError):
    exit_code = 6


class ResourceExhausted(FluxdepotError):
    exit_code = 7


class FailedPrecondition(FluxdepotError):
    exit_code = 8


class Unavailable(FluxdepotError):
    exit_code = 9
    hint = "check the --target address, that the server is running and, with TLS, its certificate (--ca, --cert, --key)"


class DeadlineExceeded(FluxdepotError):
    exit_code = 10


class ServerError(FluxdepotError):
    exit_code = 11


_BY_CODE: dict[grpc.StatusCode, type[FluxdepotError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.CANCELLED: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_from_rpc(exc: grpc.RpcError) -> FluxdepotError:
    """The client exception for a failed call (``grpc.aio.AioRpcError`` or a sync ``grpc.RpcError``)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    cls = _BY_CODE.get(code, ServerError)
    return cls(details or code.name.lower().replace("_", " "), code=code.name)
