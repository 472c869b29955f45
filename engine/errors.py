"""The engine's exceptions: one tree, the docstring is the default message, data lives in attributes.

    EngineError
    ├── DepositRefused                 a deposit refused at the door (nothing was created)
    │   ├── InvalidDepositRequest      a request field is missing or malformed (``field``)
    │   ├── FlowTooLarge               the content is over ``limit_bytes``
    │   ├── ChecksumMismatch           the declared sha256 does not match the content
    │   └── IssuerNotAllowed           the depositor may not deposit for that issuer
    ├── NotFound
    │   ├── FlowNotFound               no such flow (or one the caller may not see)
    │   └── DirectoryEntryNotFound     no such structure, user, partner or technical user
    ├── AlreadyExists
    │   └── ProfileAlreadyGranted      "The user already has the selected subscription"
    ├── PermissionDenied               the actor may not do this (e.g. grant without being manager)
    ├── ArtefactsNotInstalled          the configured ruleset's validation artefacts are missing or altered
    │                                  (``engine.validation.artefacts``; the daemon does not start)
    └── StoreError                     the store failed; ``__cause__`` keeps the driver error
        ├── StatusConflict             a compare-and-set status update found another status
        │   └── InvoiceAlreadyIntegrated  a racing flow integrated the same invoice (judge again)
        ├── StorageFull                the disk or database is full
        ├── StoreUnavailable           the store cannot be reached
        └── StoreRefused               the SQLite file is damaged, or missing beside used data
                                       (``engine.store.sqlite_guard``; the daemon exits 65)

A rejected invoice is not an exception: it is a ``Finding`` in a report (``engine.catalogue``).
"""

from __future__ import annotations


class EngineError(Exception):
    """The engine failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class DepositRefused(EngineError):
    """The deposit was refused."""


class InvalidDepositRequest(DepositRefused):
    """The deposit request is invalid."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FlowTooLarge(DepositRefused):
    """The flow is larger than the maximum flow size."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"the flow is {size_bytes} bytes; the maximum flow size is {limit_bytes} bytes")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class ChecksumMismatch(DepositRefused):
    """The declared sha256 does not match the content."""

    def __init__(self, declared: str, actual: str) -> None:
        super().__init__(f"sha256: declared {declared} but the content hashes to {actual}")
        self.declared = declared
        self.actual = actual


class IssuerNotAllowed(DepositRefused):
    """The depositor may not deposit for this issuer."""

    def __init__(self, depositor: str, issuer_siret: str) -> None:
        super().__init__(f"{depositor} may not deposit flows for structure {issuer_siret}")
        self.depositor = depositor
        self.issuer_siret = issuer_siret


class NotFound(EngineError):
    """Not found."""


class FlowNotFound(NotFound):
    """No such flow."""

    def __init__(self, flow_number: str) -> None:
        super().__init__(f"flow {flow_number} not found")
        self.flow_number = flow_number


class DirectoryEntryNotFound(NotFound):
    """No such directory entry."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key} not found")
        self.what = what
        self.key = key


class AlreadyExists(EngineError):
    """Already exists."""


class ProfileAlreadyGranted(AlreadyExists):
    """The user already has the selected subscription"""


class PermissionDenied(EngineError):
    """Permission denied."""


class RulesetUnavailable(EngineError):
    """A depositor was given a ruleset whose validation artefacts are not installed here: its flows
    could only end in WARNING. The message names the ruleset and the first missing artefact."""


class StoreError(EngineError):
    """The store failed."""


class StatusConflict(StoreError):
    """The flow's status changed under us."""

    def __init__(self, flow_number: str, expected: str, actual: str | None) -> None:
        super().__init__(f"flow {flow_number}: expected status {expected}, found {actual}")
        self.flow_number = flow_number
        self.expected = expected
        self.actual = actual


class InvoiceAlreadyIntegrated(StatusConflict):
    """Another flow integrated an invoice of this verdict while it was judged: judge the flow again."""

    def __init__(self, flow_number: str) -> None:
        EngineError.__init__(
            self, f"flow {flow_number}: another flow integrated one of its invoices meanwhile; judge it again"
        )
        self.flow_number = flow_number
        self.expected = "IN_PROGRESS"
        self.actual = "IN_PROGRESS"


class StorageFull(StoreError):
    """The storage is full; no new flow can be accepted until space is freed."""


class StoreUnavailable(StoreError):
    """The store is unavailable."""
