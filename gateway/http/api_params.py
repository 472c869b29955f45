"""What the JSON API's routes share: the caller (one dependency yielding the ``Principal``), the query
parameters of searches and dashboards turned into the engine's queries, and the documented error answers.

Query parameters are typed, so FastAPI checks them and the OpenAPI document describes them; a bad one is
400 naming the parameter (``gateway.http.app``'s validation handler). Repeatable filters (``issuer``,
``status``, ``syntax``) are given once per value: ``?status=REJECTED&status=WARNING``. A datetime without
an offset is UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BeforeValidator, StringConstraints

from engine.model import Channel, Syntax
from engine.permissions import Principal
from engine.queries import MAX_PAGE_SIZE, DashboardQuery, FlowQuery, PageKey
from engine.status import FlowStatus
from gateway.http.api_models import ChannelName, ErrorBody, StatusName, SyntaxName
from gateway.http.errors import InvalidField
from gateway.http.services import HttpServices

DEFAULT_PAGE_SIZE = 100
DEFAULT_TOP_ERRORS = 10
MAX_TOP_ERRORS = 100
MAX_ISSUERS = 500  # a query string stays far below the HTTP server's request-line limit
MAX_ENUM_VALUES = 100

_bearer = HTTPBearer(
    auto_error=False,  # HttpAuth answers a missing or wrong token (401 with its challenge, rate limits)
    description="A technical user's or user's token, or an access token from POST /oauth/token.",
)


async def _caller(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Principal:
    services: HttpServices = request.app.state.services
    return await services.auth.principal(request)


Caller = Annotated[Principal, Depends(_caller)]
"""The authenticated caller of a route (401 or 429 otherwise); ``_bearer`` declares it in the document."""


def services_of(request: Request) -> HttpServices:
    return request.app.state.services  # type: ignore[no-any-return]


# --- documented errors ------------------------------------------------------------------------------------

_WHY = {
    400: "A parameter or field is missing or malformed (the message names it), or the deposit was refused.",
    401: "No token, or a wrong or expired one (see WWW-Authenticate).",
    403: "The caller may not do this.",
    404: "No such flow, or one the caller may not see.",
    409: "The flow's status does not allow this (it changed meanwhile).",
    413: "The file is larger than the limit.",
    429: "Too many requests from this caller (see Retry-After).",
    503: "The store is unreachable; nothing was recorded, retry later.",
    507: "The server's storage is full.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route: ``statuses`` plus those of every authenticated route."""
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in sorted({400, 401, 429, 503, *statuses})}


# --- query parameters -----------------------------------------------------------------------------------

Siret = Annotated[str, StringConstraints(pattern=r"^[0-9]{14}$")]
Issuers = Annotated[
    list[Siret], Query(alias="issuer", max_length=MAX_ISSUERS, description="issuer SIRET; repeat for several")
]
Statuses = Annotated[
    list[StatusName],
    Query(alias="status", max_length=MAX_ENUM_VALUES, description="repeat for several"),
]
Syntaxes = Annotated[
    list[SyntaxName],
    Query(alias="syntax", max_length=MAX_ENUM_VALUES, description="repeat for several"),
]

_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _date_time(value: object) -> object:
    """Only an ISO 8601 date and time (pydantic alone would also take a number as a Unix time)."""
    if isinstance(value, str) and not _DATE_TIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-03-01T00:00:00Z")
    return value


def _in_utc(at: datetime) -> datetime:
    """``at`` in UTC (without an offset it is UTC already); the store compares UTC times."""
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once in UTC") from None


DateTime = Annotated[datetime, BeforeValidator(_date_time), AfterValidator(_in_utc)]
From = Annotated[DateTime | None, Query(alias="from", description="deposited at or after (inclusive)")]
To = Annotated[DateTime | None, Query(alias="to", description="deposited before (exclusive)")]


def statuses(values: list[Any]) -> tuple[FlowStatus, ...]:
    return tuple(FlowStatus[v.value] for v in values)


def syntaxes(values: list[Any]) -> tuple[Syntax, ...]:
    return tuple(Syntax(v.value) for v in values)


def _flow_query(
    issuer: Issuers = [],  # noqa: B006 - FastAPI copies parameter defaults
    status: Statuses = [],  # noqa: B006
    syntax: Syntaxes = [],  # noqa: B006
    deposited_from: From = None,
    deposited_to: To = None,
    flow_number: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    file_name: Annotated[str | None, Query(max_length=255, description="a part of the file name")] = None,
    channel: ChannelName | None = None,
    sha256: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    tracking_id: Annotated[str | None, Query(max_length=255)] = None,
    updated_after: Annotated[DateTime | None, Query(description="status changed strictly after")] = None,
) -> FlowQuery:
    return FlowQuery(
        issuer_sirets=tuple(issuer),
        statuses=statuses(status),
        syntaxes=syntaxes(syntax),
        deposited_from=deposited_from,
        deposited_to=deposited_to,
        flow_number=flow_number.strip() if flow_number and flow_number.strip() else None,
        file_name_contains=file_name or None,
        channel=Channel[channel.name] if channel is not None else None,
        sha256=sha256,
        tracking_id=tracking_id or None,
        updated_after=updated_after,
    )


FlowFilters = Annotated[FlowQuery, Depends(_flow_query)]
"""The filters of ``GET /v1/flows`` and its CSV export, as gRPC ``SearchRequest``'s."""


def _page_key(page_token: Annotated[str | None, Query(max_length=1024)] = None) -> PageKey | None:
    if not page_token:
        return None
    try:
        return PageKey.from_token(page_token)
    except ValueError:
        raise InvalidField("page_token", "is not a token this server issued") from None


PageAfter = Annotated[PageKey | None, Depends(_page_key)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


def _dashboard_query(
    issuer: Issuers = [],  # noqa: B006
    syntax: Syntaxes = [],  # noqa: B006
    deposited_from: From = None,
    deposited_to: To = None,
    top_errors: Annotated[int, Query(ge=1, le=MAX_TOP_ERRORS)] = DEFAULT_TOP_ERRORS,
) -> DashboardQuery:
    return DashboardQuery(
        issuer_sirets=tuple(issuer),
        syntaxes=syntaxes(syntax),
        deposited_from=deposited_from,
        deposited_to=deposited_to,
        top_errors=top_errors,
    )


DashboardFilters = Annotated[DashboardQuery, Depends(_dashboard_query)]
