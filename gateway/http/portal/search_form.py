"""The Search tab's criteria: query parameters → ``engine.queries.FlowQuery``, and back to a query string
(the Dashboard's links, the next page, the CSV export). Unreadable values are ignored like empty ones: a
person's typo shows every flow rather than an error page.

"Data flow type (then the flows of that type)", as the product's help page describes it: the type is the
flux family (E1 structured invoice, E2 mixed invoice: minimal data with the PDF, domain.md), then the flows
offered are the syntaxes of that type (``IN_DP_E1_UBL_INVOICE``, ...). A type alone searches all its
flows; a flow of another type than the one chosen is ignored like an unreadable value (the page, once
shown again, offers only the flows of the type).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from engine.model import Syntax
from engine.queries import FlowQuery, PageKey
from engine.status import FlowStatus

FIELDS = ("issuer", "status", "flow_type", "syntax", "from", "to", "flow_number", "file_name")
MAX_TEXT_CHARS = 200
FLOW_TYPES = ("E1", "E2")  # the flux families fluxdepot accepts; a syntax's is in its name (IN_DP_E1_...)


def flow_type(syntax: Syntax) -> str:
    """The data flow type (flux family) of a syntax: ``E1`` or ``E2``."""
    return syntax.value.split("_")[2]


def flows_of_type(kind: str) -> list[Syntax]:
    """The flows (syntaxes) of a data flow type, every one when ``kind`` is empty."""
    return [s for s in Syntax if not kind or flow_type(s) == kind]


@dataclass(frozen=True)
class SearchForm:
    values: dict[str, str]  # what the form shows again, by field name

    @classmethod
    def read(cls, params: Mapping[str, str]) -> SearchForm:
        return cls({name: (params.get(name) or "").strip()[:MAX_TEXT_CHARS] for name in FIELDS})

    @property
    def advanced(self) -> bool:
        return bool(self.values["flow_number"] or self.values["file_name"])

    def query(self, zone: ZoneInfo) -> FlowQuery:
        v = self.values
        status = _status(v["status"])
        kind = v["flow_type"] if v["flow_type"] in FLOW_TYPES else ""
        syntax = _syntax(v["syntax"])
        if syntax is not None and kind and flow_type(syntax) != kind:
            syntax = None
        syntaxes = (syntax,) if syntax else tuple(flows_of_type(kind)) if kind else ()
        start, end = _day(v["from"]), _day(v["to"])
        return FlowQuery(
            issuer_sirets=(v["issuer"],) if v["issuer"] else (),
            statuses=(status,) if status else (),
            syntaxes=syntaxes,
            deposited_from=datetime.combine(start, time(), zone) if start else None,
            deposited_to=datetime.combine(end + timedelta(days=1), time(), zone) if end else None,
            flow_number=v["flow_number"] or None,
            file_name_contains=v["file_name"] or None,
        )

    def query_string(self, **extra: str) -> str:
        return urlencode({k: val for k, val in {**self.values, **extra}.items() if val})


def page_key(token: str | None) -> PageKey | None:
    if not token:
        return None
    try:
        return PageKey.from_token(token)
    except ValueError:
        return None


def _status(text: str) -> FlowStatus | None:
    try:
        return FlowStatus.parse(text) if text else None
    except ValueError:
        return None


def _syntax(text: str) -> Syntax | None:
    try:
        return Syntax(text) if text else None
    except ValueError:
        return None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None
