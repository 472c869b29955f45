"""``FlowService`` (DESIGN §10): each method converts the request, calls one use case of the application
layer (``engine.services.flows``, ``engine.services.watch``) and converts the answer back.

Authentication is the ``unary``/``stream``/``client_stream`` decorators'; who may see or deposit what is
decided by the services (a hidden flow answers ``NOT_FOUND`` exactly like a missing one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from engine.errors import InvalidDepositRequest
from engine.permissions import Principal
from engine.report import render_file
from engine.services.flows import FlowsService
from engine.services.watch import WatchService
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc
from gateway import grpc_convert as conv
from gateway import grpc_files as files
from gateway.grpc_auth import Authenticator, client_stream, stream, unary
from gateway.grpc_errors import InvalidArgument


class FlowServicer(pb_grpc.FlowServiceServicer):
    """Every method: authenticate (``unary``/``stream``), convert, call one use case, convert back."""

    def __init__(self, flows: FlowsService, watch: WatchService, auth: Authenticator) -> None:
        self.flows = flows
        self.watch = watch
        self.auth = auth

    @unary
    async def Deposit(  # noqa: N802 - gRPC method names are CamelCase
        self, request: pb.DepositRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.DepositResponse:
        receipt = await self.flows.deposit(principal, conv.deposit_form(request), request.content)
        return conv.deposit_response(receipt)

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

        receipt = await self.flows.deposit_stream(principal, conv.deposit_form(first.header), data())
        return conv.deposit_response(receipt)

    @unary
    async def GetFlow(  # noqa: N802
        self, request: pb.GetFlowRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Flow:
        return conv.flow_message(await self.flows.get_flow(principal, conv.flow_number(request.flow_number)))

    @unary
    async def GetReport(  # noqa: N802
        self, request: pb.GetReportRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Report:
        report = await self.flows.report(principal, conv.flow_number(request.flow_number))
        fmt = conv.report_format(request.format)
        message = conv.report_message(report)
        message.format = conv.FORMAT_TO_PB[fmt]  # type: ignore[assignment]
        message.content = render_file(report, fmt)
        message.content_type = fmt.content_type
        message.file_name = f"{report.flow.flow_number}.{fmt.extension}"
        return message

    @stream
    async def DownloadReports(  # noqa: N802
        self, request: pb.DownloadReportsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FileChunk]:
        numbers = conv.flow_numbers(request.flow_numbers)
        zipped = await self.flows.reports_zip(principal, numbers, conv.report_format(request.format))
        for chunk in files.chunks(zipped.content, zipped.name, zipped.content_type):
            yield chunk

    @unary
    async def Search(  # noqa: N802
        self, request: pb.SearchRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.SearchResponse:
        query = conv.flow_query(request)
        size = conv.page_size(request.page_size)
        after = conv.page_key(request.page_token)
        page = await self.flows.search(principal, query, page_size=size, after=after)
        return pb.SearchResponse(
            flows=[conv.flow_message(f) for f in page.flows],
            next_page_token=page.next_page.token() if page.next_page else "",
            total_count=page.total_count,
        )

    @stream
    async def ExportSearch(  # noqa: N802
        self, request: pb.SearchRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FileChunk]:
        export = self.flows.export_csv(principal, conv.flow_query(request))
        async for chunk in files.stream_chunks(export.chunks, export.name, export.content_type):
            yield chunk

    @unary
    async def Dashboard(  # noqa: N802
        self, request: pb.DashboardRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.DashboardResponse:
        return conv.dashboard_message(await self.flows.dashboard(principal, conv.dashboard_query(request)))

    @stream
    async def WatchFlow(  # noqa: N802
        self, request: pb.GetFlowRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FlowEvent]:
        async for event in self.watch.watch_flow(principal, conv.flow_number(request.flow_number)):
            yield conv.event_message(event)

    @stream
    async def WatchFlows(  # noqa: N802
        self, request: pb.WatchFlowsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.FlowEvent]:
        if request.cursor < 0:
            raise InvalidArgument("cursor", "must be a cursor this server sent (or 0)")
        events = self.watch.watch_flows(
            principal,
            cursor=request.cursor,
            from_start=request.from_start,
            issuer_sirets=conv.sirets("issuer_sirets", request.issuer_sirets),
            statuses=conv.statuses("statuses", request.statuses),
        )
        async for event in events:
            yield conv.event_message(event)
