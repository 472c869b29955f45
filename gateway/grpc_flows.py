"""``FlowService`` (DESIGN §10): translate the request, check who may do it, delegate to the engine.

Permissions (DESIGN §6): every method needs a valid bearer token. A flow the caller may not see answers
``NOT_FOUND`` exactly like a missing one (``FlowNotFound``), and searches, counts, exports and feeds go
through the store with the caller's ``Visibility``, so a hidden flow is never returned nor counted.
Deposits: a technical user deposits on the API channel for its structure (a provider's for any issuer);
a portal user on the PORTAL channel for a structure they belong to.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

import grpc

from engine import ENGINE_VERSION
from engine.clock import utcnow
from engine.deposit import DepositReceipt, DepositRequest, DepositService
from engine.errors import FlowNotFound, InvalidDepositRequest, PermissionDenied
from engine.model import Channel, FlowRecord
from engine.permissions import Principal, PrincipalKind, check_can_deposit_for, visibility_of
from engine.queries import FlowQuery
from engine.status import FlowStatus
from engine.store.port import Store
from engine.watchdog import cutoffs
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc
from gateway import grpc_convert as conv
from gateway import grpc_files as files
from gateway import grpc_watch as watch
from gateway.grpc_auth import Authenticator, client_stream, stream, unary
from gateway.grpc_errors import InvalidArgument

MAX_REPORTS_PER_ZIP = 500
_SIRET = re.compile(r"^[0-9]{14}$")


async def visible_flow(store: Store, principal: Principal, flow_number: str) -> FlowRecord:
    """The flow, or ``FlowNotFound`` when it does not exist or the caller may not see it."""
    number = conv.flow_number(flow_number)
    flow = await store.get_flow(number)
    if flow is None or not visibility_of(principal).allows(flow.issuer_siret, flow.depositor):
        raise FlowNotFound(number)
    return flow


def deposit_issuer(principal: Principal, requested: str) -> str:
    """The structure a deposit is for: the request's, else the caller's own (one structure only)."""
    issuer = requested.strip()
    if issuer:
        if not _SIRET.match(issuer):
            raise InvalidArgument("issuer_siret", "must be a 14-digit SIRET")
        return issuer
    if principal.kind is PrincipalKind.USER:
        if len(principal.member_of) == 1:
            return next(iter(principal.member_of))
        if not principal.member_of:
            raise PermissionDenied(f"{principal.depositor} belongs to no structure and may not deposit")
        raise InvalidArgument(
            "issuer_siret",
            "is required: you belong to several structures (" + ", ".join(sorted(principal.member_of)) + ")",
        )
    if principal.siret:
        return principal.siret
    raise InvalidArgument("issuer_siret", "is required")


def deposit_channel(principal: Principal) -> Channel:
    if principal.kind is PrincipalKind.USER:
        return Channel.PORTAL
    if principal.kind is PrincipalKind.PARTNER:
        return Channel.EDI
    return Channel.API


class FlowServicer(pb_grpc.FlowServiceServicer):
    """Every method: authenticate (``unary``/``stream``), translate, delegate, translate back."""

    def __init__(
        self,
        store: Store,
        deposits: DepositService,
        auth: Authenticator,
        *,
        engine_version: str = ENGINE_VERSION,
        watch_wait_s: float = 15.0,
        clock: Callable[[], datetime] = utcnow,
        stuck_after_s: Mapping[FlowStatus, float] | None = None,
    ) -> None:
        self.stuck_after_s = dict(stuck_after_s or {})  # the stuck-flow watchdog's ages, for Dashboard
        self.store = store
        self.deposits = deposits
        self.auth = auth
        self.engine_version = engine_version
        self.watch_wait_s = watch_wait_s
        self.clock = clock

    @unary
    async def Deposit(  # noqa: N802 - gRPC method names are CamelCase
        self, request: pb.DepositRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.DepositResponse:
        receipt = await self.deposits.deposit(_deposit_request(request, principal))
        return _deposit_response(receipt)

    @client_stream
    async def DepositStream(  # noqa: N802
        self, requests: AsyncIterator[pb.DepositChunk], context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.DepositResponse:
        first = await anext(aiter(requests), None)
        if first is None or not first.HasField("header"):
            raise InvalidDepositRequest("header", "the first DepositChunk must carry the header")
        if first.header.content or first.data:
            raise InvalidDepositRequest("content", "the first DepositChunk carries the header only")

        async def data() -> AsyncIterator[bytes]:
            async for chunk in requests:
                yield chunk.data

        receipt = await self.deposits.deposit_stream(_deposit_request(first.header, principal), data())
        return _deposit_response(receipt)

    @unary
    async def GetFlow(  # noqa: N802
        self, request: pb.GetFlowRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Flow:
        return conv.flow_message(await visible_flow(self.store, principal, request.flow_number))

    @unary
    async def GetReport(  # noqa: N802
        self, request: pb.GetReportRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Report:
        flow = await visible_flow(self.store, principal, request.flow_number)
        report = await files.load_report(self.store, flow, engine_version=self.engine_version)
        content, content_type, ext = files.render(report, request.format)
        message = conv.report_message(report, flow)
        message.format = pb.REPORT_FORMAT_XML if ext == "xml" else pb.REPORT_FORMAT_JSON
        message.content = content
        message.content_type = content_type
        message.file_name = f"{flow.flow_number}.{ext}"
        return message

    @stream
    async def DownloadReports(  # noqa: N802
        self, request: pb.DownloadReportsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FileChunk]:
        numbers = [conv.flow_number(n) for n in request.flow_numbers]
        if not numbers:
            raise InvalidArgument("flow_numbers", "name at least one flow")
        if len(set(numbers)) > MAX_REPORTS_PER_ZIP:
            raise InvalidArgument("flow_numbers", f"at most {MAX_REPORTS_PER_ZIP} flows per zip")
        allows = visibility_of(principal).allows
        flows = await files.visible_flows(self.store, numbers, allows, limit=MAX_REPORTS_PER_ZIP)
        data = await files.reports_zip(self.store, flows, request.format)
        stamp = self.clock().strftime("%Y%m%dT%H%M%SZ")
        for chunk in files.chunks(data, f"reports_{stamp}.zip", "application/zip"):
            yield chunk

    @unary
    async def Search(  # noqa: N802
        self, request: pb.SearchRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.SearchResponse:
        query = conv.flow_query(request)
        size = conv.page_size(request.page_size)
        after = conv.page_key(request.page_token)
        page = await self.store.search(query, visibility_of(principal), page_size=size, after=after)
        return pb.SearchResponse(
            flows=[conv.flow_message(f) for f in page.flows],
            next_page_token=page.next_page.token() if page.next_page else "",
            total_count=page.total_count,
        )

    @stream
    async def ExportSearch(  # noqa: N802
        self, request: pb.SearchRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FileChunk]:
        query = conv.flow_query(request)
        rows = self.store.iter_search(query, visibility_of(principal))
        name = f"flows_{self.clock().strftime('%Y%m%dT%H%M%SZ')}.csv"
        async for chunk in files.csv_chunks(rows, name):
            yield chunk

    @unary
    async def Dashboard(  # noqa: N802
        self, request: pb.DashboardRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.DashboardResponse:
        query = conv.dashboard_query(request)
        visibility = visibility_of(principal)
        board = await self.store.dashboard(query, visibility)
        message = conv.dashboard_message(board, self.clock())
        for status, before in cutoffs(self.clock(), self.stuck_after_s).items():
            stuck = FlowQuery(issuer_sirets=query.issuer_sirets, statuses=(status,), updated_before=before)
            count = (await self.store.search(stuck, visibility, page_size=1)).total_count
            message.stuck.append(conv.status_count("", status, count))
        return message

    @stream
    async def WatchFlow(  # noqa: N802
        self, request: pb.GetFlowRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FlowEvent]:
        flow = await visible_flow(self.store, principal, request.flow_number)
        events = watch.flow_events(self.store, flow.flow_number, visibility_of(principal), wait_s=self.watch_wait_s)
        async for event in events:
            yield conv.event_message(event)

    @stream
    async def WatchFlows(  # noqa: N802
        self, request: pb.WatchFlowsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FlowEvent]:
        if request.cursor < 0:
            raise InvalidArgument("cursor", "must be a cursor this server sent (or 0)")
        events = watch.all_events(
            self.store,
            visibility_of(principal),
            cursor=request.cursor,
            from_start=request.from_start,
            issuer_sirets=frozenset(conv.sirets("issuer_sirets", request.issuer_sirets)),
            statuses=frozenset(conv.statuses("statuses", request.statuses)),
            wait_s=self.watch_wait_s,
        )
        async for event in events:
            yield conv.event_message(event)


def _deposit_request(request: pb.DepositRequest, principal: Principal) -> DepositRequest:
    """The engine's request for a ``Deposit`` or a ``DepositStream`` header (issuer checked for the caller)."""
    issuer = deposit_issuer(principal, request.issuer_siret)
    check_can_deposit_for(principal, issuer)
    return DepositRequest(
        file_name=request.file_name,
        content=request.content,
        channel=deposit_channel(principal),
        depositor=principal.depositor,
        issuer_siret=issuer,
        syntax=request.syntax or None,
        tracking_id=request.tracking_id or None,
        sha256=request.sha256.strip().lower() or None,
        partner_code=principal.login if principal.kind is PrincipalKind.PARTNER else None,
        with_signature=request.with_signature,
    )


def _deposit_response(receipt: DepositReceipt) -> pb.DepositResponse:
    flow = receipt.flow
    return pb.DepositResponse(
        flow_number=flow.flow_number,
        deposited_at=conv.timestamp(flow.deposited_at),
        syntax=flow.syntax.value,
        status=conv.STATUS_TO_PB[flow.status],  # type: ignore[arg-type]
        status_code=flow.status.code,
        sha256=flow.sha256,
        already_deposited=receipt.already_deposited,
        flow=conv.flow_message(flow),
    )
