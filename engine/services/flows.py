"""The flow use cases every face calls: deposit, get, report, reports as a zip, search, CSV export,
dashboard and reprocessing (DESIGN §6, §7, §10).

Permissions (DESIGN §6): a flow the caller may not see is ``FlowNotFound`` exactly like a missing one
(``visible_flow``), and searches, counts, exports and the dashboard go through the store with the
caller's ``Visibility``, so a hidden flow is never returned nor counted. Deposits: a technical user
deposits on the API channel for its structure (a provider's for any issuer), a portal user on the PORTAL
channel for a structure they belong to, an EDI partner on the EDI channel (``deposit_issuer``,
``deposit_channel``, ``engine.permissions.check_can_deposit_for``).

Arguments are plain and already well-formed (a face checks the shape of its own request fields: a
SIRET's digits, a page size's range); the decisions are made here.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from engine import ENGINE_VERSION
from engine.clock import utcnow
from engine.deposit import DepositReceipt, DepositRequest, DepositService
from engine.errors import FlowNotFound, InvalidDepositRequest, PermissionDenied
from engine.model import Channel, FlowRecord
from engine.permissions import (
    Principal,
    PrincipalKind,
    Visibility,
    check_can_deposit_for,
    check_can_manage,
    visibility_of,
)
from engine.queries import Dashboard, DashboardQuery, FlowQuery, PageKey, SearchPage
from engine.report import Report, ReportFormat, build_report, render_file
from engine.services.exports import csv_bytes, zip_files
from engine.status import FlowEvent, FlowStatus
from engine.store.port import Store
from engine.watchdog import cutoffs

MAX_REPORTS_PER_ZIP = 500
MAX_DETAIL_CHARS = 500  # an operator's note on a reprocessing
_SIRET = re.compile(r"[0-9]{14}")
_STAMP = "%Y%m%dT%H%M%SZ"  # file names of zips and exports
_ORIGINAL_CHUNK_BYTES = 256 * 1024


class Reprocess(enum.Enum):
    """What an administrator does to a held (or final) flow, as the event recorded."""

    RELEASE = FlowEvent.ADMIN_RELEASE  # back to WAITING_FOR_PROCESSING
    CLOSE = FlowEvent.ADMIN_CLOSE  # to WARNING
    REPROCESS = FlowEvent.ADMIN_REPROCESS  # judged again


@dataclass(frozen=True)
class DepositForm:
    """What a depositor says about a deposit besides its bytes; ``issuer_siret`` "" means the caller's own
    structure (``deposit_issuer``)."""

    file_name: str
    issuer_siret: str = ""
    syntax: str | None = None  # declared syntaxeFlux; detected when None
    tracking_id: str | None = None
    sha256: str | None = None  # hex, any case
    with_signature: bool = False


@dataclass(frozen=True)
class FileOut:
    """A whole file to hand out (a rendered report, a zip of reports)."""

    name: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class FileStream:
    """A file handed out as it is produced (a CSV export): ``chunks`` is read once."""

    name: str
    content_type: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class DashboardView:
    """The dashboard of the flows a caller sees, with the stuck-flow counts and the time it was taken."""

    board: Dashboard
    stuck: dict[FlowStatus, int]  # per watched status: flows in it for longer than its configured age
    at: datetime  # the ages of ``board.oldest`` are measured from it


async def visible_flow(store: Store, principal: Principal, flow_number: str) -> FlowRecord:
    """The flow, or ``FlowNotFound`` when it does not exist or the caller may not see it."""
    flow = await store.get_flow(flow_number)
    if flow is None or not visibility_of(principal).allows(flow.issuer_siret, flow.depositor):
        raise FlowNotFound(flow_number)
    return flow


def deposit_issuer(principal: Principal, requested: str) -> str:
    """The structure a deposit is for: the request's, else the caller's own (one structure only)."""
    issuer = requested.strip()
    if issuer:
        if not _SIRET.fullmatch(issuer):
            raise InvalidDepositRequest("issuer_siret", "must be a 14-digit SIRET")
        return issuer
    if principal.kind is PrincipalKind.USER:
        if len(principal.member_of) == 1:
            return next(iter(principal.member_of))
        if not principal.member_of:
            raise PermissionDenied(f"{principal.depositor} belongs to no structure and may not deposit")
        raise InvalidDepositRequest(
            "issuer_siret",
            "is required: you belong to several structures (" + ", ".join(sorted(principal.member_of)) + ")",
        )
    if principal.siret:
        return principal.siret
    raise InvalidDepositRequest("issuer_siret", "is required")


def deposit_channel(principal: Principal) -> Channel:
    if principal.kind is PrincipalKind.USER:
        return Channel.PORTAL
    if principal.kind is PrincipalKind.PARTNER:
        return Channel.EDI
    return Channel.API


class FlowsService:
    """The flow use cases; each takes the caller's ``Principal`` first."""

    def __init__(
        self,
        store: Store,
        deposits: DepositService,
        *,
        stuck_after_s: Mapping[FlowStatus, float],
        clock: Callable[[], datetime] = utcnow,
        engine_version: str = ENGINE_VERSION,
    ) -> None:
        self._store = store
        self._deposits = deposits
        self._stuck_after_s = dict(stuck_after_s)  # the stuck-flow watchdog's ages, for the dashboard
        self._clock = clock
        self._engine_version = engine_version

    # --- deposits ----------------------------------------------------------------------------------

    async def deposit(self, principal: Principal, form: DepositForm, content: bytes) -> DepositReceipt:
        """Deposit ``content``; returns once the flow is durable (``engine.deposit``)."""
        return await self._deposits.deposit(self._request(principal, form, content))

    async def deposit_stream(
        self, principal: Principal, form: DepositForm, chunks: AsyncIterator[bytes]
    ) -> DepositReceipt:
        """Deposit the bytes ``chunks`` yields, spooled to disk as they come (``engine.deposit``)."""
        return await self._deposits.deposit_stream(self._request(principal, form, b""), chunks)

    @staticmethod
    def _request(principal: Principal, form: DepositForm, content: bytes) -> DepositRequest:
        """The engine's request, once the issuer is decided and the caller allowed to deposit for it."""
        issuer = deposit_issuer(principal, form.issuer_siret)
        check_can_deposit_for(principal, issuer)
        return DepositRequest(
            file_name=form.file_name,
            content=content,
            channel=deposit_channel(principal),
            depositor=principal.depositor,
            issuer_siret=issuer,
            syntax=form.syntax or None,
            tracking_id=form.tracking_id or None,
            sha256=(form.sha256 or "").strip().lower() or None,
            partner_code=principal.login if principal.kind is PrincipalKind.PARTNER else None,
            with_signature=form.with_signature,
        )

    # --- one flow -----------------------------------------------------------------------------------

    async def get_flow(self, principal: Principal, flow_number: str) -> FlowRecord:
        return await visible_flow(self._store, principal, flow_number)

    async def report(self, principal: Principal, flow_number: str) -> Report:
        """The integration report of a flow the caller sees."""
        return await self._report(await visible_flow(self._store, principal, flow_number))

    async def _report(self, flow: FlowRecord) -> Report:
        number = flow.flow_number
        return build_report(
            flow,
            await self._store.history(number),
            await self._store.flow_findings(number),
            await self._store.invoices(number),
            ruleset_version=await self._store.ruleset_version(number) or "",
            engine_version=self._engine_version,
        )

    async def reports_zip(self, principal: Principal, flow_numbers: Sequence[str], fmt: ReportFormat) -> FileOut:
        """A zip of the reports of the flows named (``<flow number>.<ext>``, in order, each once, at most
        ``MAX_REPORTS_PER_ZIP``); one missing or hidden flow is ``FlowNotFound`` for the whole zip."""
        members = []
        for flow in await self._visible_flows(principal, flow_numbers):
            members.append((f"{flow.flow_number}.{fmt.extension}", render_file(await self._report(flow), fmt)))
        name = f"reports_{self._clock().strftime(_STAMP)}.zip"
        return FileOut(name, "application/zip", await zip_files(members))

    async def _visible_flows(self, principal: Principal, flow_numbers: Sequence[str]) -> list[FlowRecord]:
        allows = visibility_of(principal).allows
        out: list[FlowRecord] = []
        seen: set[str] = set()
        for number in flow_numbers:
            if number in seen:
                continue
            seen.add(number)
            flow = await self._store.get_flow(number)
            if flow is None or not allows(flow.issuer_siret, flow.depositor):
                raise FlowNotFound(number)
            out.append(flow)
        return out[:MAX_REPORTS_PER_ZIP]

    async def reprocess(self, principal: Principal, flow_number: str, action: Reprocess, detail: str) -> FlowRecord:
        """Release, close or reprocess a flow the caller sees and manages (a primary manager of its
        issuer, or an operator); the change is recorded with the caller as actor and ``detail`` as note."""
        flow = await visible_flow(self._store, principal, flow_number)
        check_can_manage(principal, flow.issuer_siret)
        return await self._store.transition(
            flow.flow_number,
            flow.status,
            action.value,
            actor=principal.depositor,
            at=self._clock(),
            detail=detail.strip()[:MAX_DETAIL_CHARS] or None,
        )

    # --- many flows ---------------------------------------------------------------------------------

    async def search(
        self, principal: Principal, query: FlowQuery, *, page_size: int, after: PageKey | None = None
    ) -> SearchPage:
        """One page of the flows the caller sees matching ``query``, and how many match in all."""
        return await self._store.search(query, visibility_of(principal), page_size=page_size, after=after)

    def export_csv(self, principal: Principal, query: FlowQuery) -> FileStream:
        """Every flow the caller sees matching ``query``, as CSV produced while it is read."""
        rows = self._store.iter_search(query, visibility_of(principal))
        return FileStream(f"flows_{self._clock().strftime(_STAMP)}.csv", "text/csv", csv_bytes(rows))

    async def dashboard(self, principal: Principal, query: DashboardQuery) -> DashboardView:
        """Counts per issuer and status, oldest flow per non-final status and most frequent errors of the
        flows the caller sees, with the stuck flows among them per watched status."""
        visibility = visibility_of(principal)
        board = await self._store.dashboard(query, visibility)
        now = self._clock()
        # The board's oldest flow per status (the same flows, when no syntax or period narrows it) spares
        # the count of a status where none is stuck: no flow in it, or its oldest changed after the cutoff.
        oldest = None if query.syntaxes or query.deposited_from or query.deposited_to else board.oldest
        stuck: dict[FlowStatus, int] = {}
        for status, before in cutoffs(now, self._stuck_after_s).items():
            if oldest is not None and (status not in oldest or oldest[status] >= before):
                stuck[status] = 0
            else:
                count = FlowQuery(issuer_sirets=query.issuer_sirets, statuses=(status,), updated_before=before)
                stuck[status] = await self._count(count, visibility)
        return DashboardView(board, stuck, now)

    async def _count(self, query: FlowQuery, visibility: Visibility) -> int:
        # A count alone: a search page of a status with few flows walked the whole search order (2.4 s
        # at 1,000,000 flows for an operator's dashboard when a watched status had none).
        return await self._store.count_flows(query, visibility)

    # --- the AFNOR Flow Service's needs -------------------------------------------------------------

    async def search_changed(self, principal: Principal, query: FlowQuery, *, limit: int) -> list[FlowRecord]:
        """Up to ``limit`` flows the caller sees matching ``query``, oldest status change first (pages go
        on with ``query.updated_after``)."""
        return await self._store.search_changed(query, visibility_of(principal), limit=limit)

    async def original(self, principal: Principal, flow_number: str) -> FileStream:
        """The bytes a flow the caller sees was deposited with, read as they are sent."""
        flow = await visible_flow(self._store, principal, flow_number)
        content = await self._store.flow_content(flow.flow_number)
        key = await self._store.get_blob_key(flow.flow_number) if content is None else None
        path = self._deposits.blob_path(key) if key else None

        async def chunks() -> AsyncIterator[bytes]:
            if content is not None:
                yield content
                return
            if path is None:
                return
            with await asyncio.to_thread(path.open, "rb") as file:
                while piece := await asyncio.to_thread(file.read, _ORIGINAL_CHUNK_BYTES):
                    yield piece

        return FileStream(flow.file_name, "application/octet-stream", chunks())
