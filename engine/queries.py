"""Monitoring queries as data: search filters, keyset page tokens, dashboard rows, the event feed.

The store answers these (``engine.store.port``) with the caller's ``Visibility`` applied inside the
query, so that counts and pages never include a hidden flow. Page tokens are keyset cursors (the sort
key of the last row), never offsets: a later page costs what the first one does.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from engine.model import Channel, FlowRecord, Syntax
from engine.status import FlowEvent, FlowStatus

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class FlowQuery:
    """Search filters (DESIGN §10 ``SearchRequest``); empty tuples and None mean "any"."""

    issuer_sirets: tuple[str, ...] = ()
    statuses: tuple[FlowStatus, ...] = ()
    syntaxes: tuple[Syntax, ...] = ()
    deposited_from: datetime | None = None  # inclusive
    deposited_to: datetime | None = None  # exclusive
    flow_number: str | None = None
    file_name_contains: str | None = None
    channel: Channel | None = None
    sha256: str | None = None
    tracking_id: str | None = None
    updated_after: datetime | None = None  # status_changed_at strictly after
    updated_before: datetime | None = None  # status_changed_at strictly before (stuck-flow watchdog)


@dataclass(frozen=True)
class PageKey:
    """The sort key of a row: issuer ascending, then deposit date and flow number descending."""

    issuer_siret: str
    deposited_at: datetime
    flow_number: str

    def token(self) -> str:
        raw = json.dumps([self.issuer_siret, self.deposited_at.isoformat(), self.flow_number])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> PageKey:
        """Decode a page token; raises ``ValueError`` for anything not made by ``token()``."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            issuer, at, number = json.loads(raw)
            return cls(str(issuer), datetime.fromisoformat(str(at)), str(number))
        except (ValueError, TypeError) as exc:
            raise ValueError("invalid page token") from exc

    @classmethod
    def of(cls, flow: FlowRecord) -> PageKey:
        return cls(flow.issuer_siret, flow.deposited_at, flow.flow_number)


@dataclass(frozen=True)
class SearchPage:
    flows: tuple[FlowRecord, ...]
    next_page: PageKey | None  # None on the last page
    total_count: int


@dataclass(frozen=True)
class IssuerPage:
    """A slice of the dashboard's issuers (in SIRET order): the rows of ``size`` issuers from ``first``
    (0-based); the totals and the issuer count still cover every issuer."""

    first: int
    size: int


@dataclass(frozen=True)
class DashboardQuery:
    issuer_sirets: tuple[str, ...] = ()
    syntaxes: tuple[Syntax, ...] = ()
    deposited_from: datetime | None = None
    deposited_to: datetime | None = None
    top_errors: int = 10
    issuer_page: IssuerPage | None = None  # None: the rows of every issuer


@dataclass(frozen=True)
class DashboardRow:
    issuer_siret: str
    status: FlowStatus
    count: int


@dataclass(frozen=True)
class ErrorCount:
    code: str
    rule: str | None
    count: int


@dataclass(frozen=True)
class Dashboard:
    rows: tuple[DashboardRow, ...]  # counts per issuer × status (only non-zero), of the page's issuers if paged
    oldest: dict[FlowStatus, datetime]  # status_changed_at of the oldest flow in each non-final status
    top_errors: tuple[ErrorCount, ...]  # most frequent error codes/rules of the period
    status_totals: dict[FlowStatus, int] | None = None  # every issuer's, when ``rows`` is a page
    issuer_count: int | None = None  # issuers with a count, when ``rows`` is a page

    def totals(self) -> dict[FlowStatus, int]:
        if self.status_totals is not None:
            return dict(self.status_totals)
        out: dict[FlowStatus, int] = {}
        for row in self.rows:
            out[row.status] = out.get(row.status, 0) + row.count
        return out

    def issuers(self) -> int:
        """How many issuers have a count (all of them, not only the page's)."""
        return self.issuer_count if self.issuer_count is not None else len({row.issuer_siret for row in self.rows})


@dataclass(frozen=True)
class EventRecord:
    """One status change in the global feed; ``cursor`` grows in commit order."""

    cursor: int
    flow_number: str
    issuer_siret: str
    depositor: str
    status: FlowStatus
    event: FlowEvent | None
    at: datetime


@dataclass(frozen=True)
class RejectRow:
    """An invoice not integrated (``ListRejects``: per issuer and day)."""

    flow_number: str
    issuer_siret: str
    deposited_at: datetime
    invoice_number: str | None
    document: str
    reason: str
