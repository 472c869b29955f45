"""Errors become SFTP status codes in exactly one table, applied at one point (STYLE rule 8).

``TABLE`` maps the engine's errors, the face's own refusals (``PathRefused``, ``IntakeRefused``) and OS
errors to an ``asyncssh.SFTPError`` with a message for the partner, most specific class first; a store
failure never shows the driver's text. Anything unmapped is ``SFTPFailure("internal error")`` with a
logged traceback. ``translated`` wraps every request
handler of an ``asyncssh.SFTPServer`` subclass with it, once, at class creation: the handlers raise what
they meet and never translate it themselves (asyncssh's own single translation point is
``SFTPServerHandler._process_packet``, which sends an ``SFTPError`` as the request's status).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncssh
import structlog

from engine.errors import (
    AlreadyExists,
    DepositRefused,
    NotFound,
    PermissionDenied,
    RulesetUnavailable,
    StorageFull,
    StoreError,
    StoreUnavailable,
)
from gateway.sftp_intake import IntakeRefused
from gateway.sftp_paths import PathRefused

log = structlog.get_logger("fluxdepot.sftp")

C = TypeVar("C", bound=type[asyncssh.SFTPServer])
# The SFTPServer methods asyncssh calls for a client's request (``exit`` is the session's end, not one).
REQUESTS = (
    "realpath", "stat", "lstat", "fstat", "setstat", "lsetstat", "fsetstat", "scandir", "open", "open56",
    "read", "write", "close", "fsync", "remove", "rename", "posix_rename", "mkdir", "rmdir", "symlink",
    "link", "readlink", "statvfs", "fstatvfs",
)  # fmt: skip


def _path(exc: PathRefused) -> asyncssh.SFTPError:
    return asyncssh.SFTPNoSuchFile(str(exc)) if exc.missing else asyncssh.SFTPPermissionDenied(str(exc))


def _refused(exc: IntakeRefused) -> asyncssh.SFTPError:
    if exc.reason.startswith("QUOTA"):
        return asyncssh.SFTPQuotaExceeded(exc.message)
    return asyncssh.SFTPFailure(exc.message)


def _os_error(exc: OSError) -> asyncssh.SFTPError:
    log.warning("sftp_os_error", error=str(exc))
    return asyncssh.SFTPFailure("the gateway could not complete the operation")


TABLE: tuple[tuple[type[BaseException], Callable[[Any], asyncssh.SFTPError]], ...] = (
    (asyncssh.SFTPError, lambda exc: exc),
    (PathRefused, _path),
    (IntakeRefused, _refused),
    (DepositRefused, lambda exc: asyncssh.SFTPFailure(exc.message)),  # its reject report is in out/
    (StorageFull, lambda _: asyncssh.SFTPFailure("the gateway's storage is full; upload the flow again later")),
    (
        StoreUnavailable,
        lambda _: asyncssh.SFTPFailure(
            "the gateway's database is unavailable; nothing was deposited, upload the flow again later"
        ),
    ),
    (
        StoreError,
        lambda _: asyncssh.SFTPFailure("the gateway could not store the flow; nothing was deposited, upload it again"),
    ),
    (NotFound, lambda exc: asyncssh.SFTPNoSuchFile(exc.message)),
    (AlreadyExists, lambda exc: asyncssh.SFTPFileAlreadyExists(exc.message)),
    (PermissionDenied, lambda exc: asyncssh.SFTPPermissionDenied(exc.message)),
    (RulesetUnavailable, lambda exc: asyncssh.SFTPFailure(exc.message)),  # no SFTP request gives one today
    (FileNotFoundError, lambda _: asyncssh.SFTPNoSuchFile("no such file")),
    (FileExistsError, lambda _: asyncssh.SFTPFileAlreadyExists("the file already exists")),
    (OSError, _os_error),
)


def sftp_error(exc: BaseException) -> asyncssh.SFTPError:
    """The one translation of ``exc`` to an SFTP status (``TABLE``)."""
    for kind, make in TABLE:
        if isinstance(exc, kind):
            return make(exc)
    log.error("sftp_unexpected_error", error=repr(exc), exc_info=exc)
    return asyncssh.SFTPFailure("internal error")


def translated(cls: C) -> C:
    """Wrap each request handler ``cls`` defines (``REQUESTS``) so that it raises only ``SFTPError``s."""
    for name in REQUESTS:
        if name in cls.__dict__:
            setattr(cls, name, _translating(cls.__dict__[name]))
    return cls


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (plain, coroutine, async generator, or plain returning an awaitable) with ``sftp_error``
    applied to what it raises."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def names(*args: Any) -> AsyncIterator[Any]:
            try:
                async for item in method(*args):
                    yield item
            except Exception as exc:
                raise sftp_error(exc) from None

        return names
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def request(*args: Any) -> Any:
            try:
                return await method(*args)
            except Exception as exc:
                raise sftp_error(exc) from None

        return request

    @functools.wraps(method)
    def call(*args: Any) -> Any:
        try:
            result = method(*args)
        except Exception as exc:
            raise sftp_error(exc) from None
        return _awaiting(result) if inspect.isawaitable(result) else result

    return call


async def _awaiting(result: Awaitable[Any]) -> Any:
    try:
        return await result
    except Exception as exc:
        raise sftp_error(exc) from None
