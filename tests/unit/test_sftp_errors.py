"""The one table of errors → SFTP status codes (STYLE rule 8), applied to every request handler."""

from __future__ import annotations

import inspect

import asyncssh

from engine import errors
from engine.store.sqlite_guard import StoreRefused
from gateway.sftp_errors import REQUESTS, TABLE, sftp_error
from gateway.sftp_fs import PartnerSftpServer
from gateway.sftp_intake import IntakeRefused
from gateway.sftp_paths import PathRefused


def _engine_error_classes() -> list[type[errors.EngineError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.EngineError) and cls is not errors.EngineError
    ]


def test_no_engine_error_falls_through_to_internal_error() -> None:
    """Every class of engine.errors (but the root) and the store guard's refusal meets a row of the table."""
    rows = [kind for kind, _ in TABLE]
    for cls in [*_engine_error_classes(), StoreRefused]:
        assert any(issubclass(cls, kind) for kind in rows), f"map {cls.__name__} in gateway/sftp_errors.py"


def test_the_table_lists_subclasses_before_their_parents() -> None:
    """The first matching row wins: a row never sits after a row of one of its base classes."""
    rows = [kind for kind, _ in TABLE]
    for i, kind in enumerate(rows):
        for earlier in rows[:i]:
            assert not issubclass(kind, earlier), f"{kind.__name__} is shadowed by {earlier.__name__}"


def test_partners_read_the_refusal_never_the_driver() -> None:
    """Refusals keep their message (a quota is QUOTA_EXCEEDED), a store failure says "upload again" without
    the driver's text, an OS error says nothing of the path, anything else is "internal error"."""
    quota = sftp_error(IntakeRefused("QUOTA_FILES", "quota exceeded"))
    assert isinstance(quota, asyncssh.SFTPQuotaExceeded) and quota.reason == "quota exceeded"
    assert isinstance(sftp_error(PathRefused("no", missing=True)), asyncssh.SFTPNoSuchFile)
    assert isinstance(sftp_error(PathRefused("no")), asyncssh.SFTPPermissionDenied)
    refused = sftp_error(errors.FlowTooLarge(10, 5))
    assert isinstance(refused, asyncssh.SFTPFailure) and "5 bytes" in refused.reason
    store = sftp_error(errors.StoreError("disk I/O error at /var/x"))
    assert "/var" not in store.reason and "upload it again" in store.reason
    assert "later" in sftp_error(errors.StoreUnavailable()).reason
    assert "/secret" not in sftp_error(PermissionError(13, "denied", "/secret")).reason
    assert sftp_error(KeyError("x")).reason == "internal error"
    assert sftp_error(errors.EngineError("secret detail")).reason == "internal error"


def test_every_request_handler_of_the_partner_server_is_translated() -> None:
    """The handlers PartnerSftpServer defines are all wrapped, once, at class creation."""
    defined = [name for name in REQUESTS if name in PartnerSftpServer.__dict__]
    assert {"open", "close", "write", "read", "scandir", "rename", "remove", "stat"} <= set(defined)
    for name in defined:
        assert hasattr(PartnerSftpServer.__dict__[name], "__wrapped__"), name
