"""The Python client of fluxdepot's gRPC API: ``AsyncClient`` (asyncio) and ``Client`` (blocking).

Both return ``clients.models`` dataclasses and raise ``clients.errors`` exceptions; nothing of grpc
leaks out. Example::

    from clients.client import Client

    with Client("127.0.0.1:50051", token="demo-technical-token") as fd:
        receipt = fd.deposit_file("invoice.xml")
        flow = fd.wait_final(receipt.flow_number)
        print(flow.status, fd.get_report(flow.flow_number).next_action_message)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clients.errors import error_from_rpc
from clients.models import (
    Dashboard,
    DepositResult,
    Flow,
    FlowEvent,
    Reject,
    Report,
    SearchPage,
    Structure,
    Token,
    Webhook,
    WebhookDelivery,
    status_value,
)
from fluxdepot.v1 import admin_pb2 as admin_pb
from fluxdepot.v1 import admin_pb2_grpc as admin_grpc
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc

DEFAULT_PORT = 50051
DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORT}"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
STREAM_ABOVE_BYTES = 1024 * 1024  # deposit_file streams bigger files (DepositStream)
CHUNK_BYTES = 1024 * 1024
_FORMATS = {"json": pb.REPORT_FORMAT_JSON, "xml": pb.REPORT_FORMAT_XML}
_CHANNELS = {"EDI": pb.CHANNEL_EDI, "API": pb.CHANNEL_API, "PORTAL": pb.CHANNEL_PORTAL}
_ACTIONS = {
    "release": admin_pb.REPROCESS_ACTION_RELEASE,
    "close": admin_pb.REPROCESS_ACTION_CLOSE,
    "reprocess": admin_pb.REPROCESS_ACTION_REPROCESS,
}
_ROLES = {"primary_manager": admin_pb.ROLE_PRIMARY_MANAGER, "user": admin_pb.ROLE_USER}
T = TypeVar("T")


def _ts(at: datetime | None) -> Timestamp | None:
    if at is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(at if at.tzinfo else at.replace(tzinfo=UTC))
    return ts


_URI_SCHEMES = ("dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:", "xds:")


def with_default_port(target: str) -> str:
    """``target`` with fluxdepot's port when it names none: ``localhost`` means ``localhost:50051``, not
    gRPC's own default (443). A bare IPv6 address gets its brackets; gRPC URIs (``unix:``, ``dns:``...)
    are left as they are."""
    if target.startswith(_URI_SCHEMES):
        return target
    if target.startswith("["):  # [::1] or [::1]:port
        return target if "]:" in target else f"{target}:{DEFAULT_PORT}"
    if target.count(":") > 1:  # a bare IPv6 address: gRPC needs brackets around it
        return f"[{target}]:{DEFAULT_PORT}"
    return target if ":" in target else f"{target}:{DEFAULT_PORT}"


def search_request(
    *,
    issuer_sirets: Sequence[str] = (),
    statuses: Sequence[str] = (),
    syntaxes: Sequence[str] = (),
    deposited_from: datetime | None = None,
    deposited_to: datetime | None = None,
    flow_number: str = "",
    file_name: str = "",
    channel: str = "",
    sha256: str = "",
    tracking_id: str = "",
    updated_after: datetime | None = None,
    page_size: int = 0,
    page_token: str = "",
) -> pb.SearchRequest:
    """A ``SearchRequest`` from Python values (statuses by name or code)."""
    if channel and channel.upper() not in _CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use EDI, API or PORTAL")
    return pb.SearchRequest(
        issuer_sirets=list(issuer_sirets),
        statuses=[status_value(s) for s in statuses],  # type: ignore[misc]
        syntaxes=list(syntaxes),
        deposited_from=_ts(deposited_from),
        deposited_to=_ts(deposited_to),
        flow_number=flow_number,
        file_name=file_name,
        channel=_CHANNELS.get(channel.upper(), pb.CHANNEL_UNSPECIFIED),  # type: ignore[arg-type]
        sha256=sha256,
        tracking_id=tracking_id,
        updated_after=_ts(updated_after),
        page_size=page_size,
        page_token=page_token,
    )


class AsyncClient:
    """One channel to a fluxdepot server; use ``async with`` or call ``close()``."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        timeout_s: float | None = 60.0,
    ) -> None:
        target = with_default_port(target)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        if tls or root_certificates or client_certificate or client_key:
            creds = grpc.ssl_channel_credentials(root_certificates, client_key, client_certificate)
            self._channel = grpc.aio.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s
        self._flows = pb_grpc.FlowServiceStub(self._channel)
        self._admin = admin_grpc.AdminServiceStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Any, request: Any, *, timeout_s: float | None = -1.0) -> Any:
        try:
            return await method(
                request, metadata=self._metadata, timeout=self._timeout_s if timeout_s == -1.0 else timeout_s
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    async def _stream(self, method: Any, request: Any) -> AsyncIterator[Any]:
        try:
            async for item in method(request, metadata=self._metadata):
                yield item
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    # --- deposits and look-ups -------------------------------------------------------------------------
    async def deposit(
        self,
        content: bytes,
        file_name: str,
        *,
        syntax: str = "",
        issuer_siret: str = "",
        tracking_id: str = "",
        sha256: str = "",
        with_signature: bool = False,
    ) -> DepositResult:
        options = {"syntax": syntax, "issuer_siret": issuer_siret, "tracking_id": tracking_id, "sha256": sha256,
                   "with_signature": with_signature}  # fmt: skip
        if len(content) > STREAM_ABOVE_BYTES:  # the server takes big files in chunks only ([grpc] max_message_bytes)
            view = memoryview(content)
            chunks = (bytes(view[i : i + CHUNK_BYTES]) for i in range(0, len(content), CHUNK_BYTES))
            return await self.deposit_stream(chunks, file_name, **options)
        request = pb.DepositRequest(file_name=file_name, content=content, **options)
        return DepositResult.from_pb(await self._call(self._flows.Deposit, request))

    async def deposit_stream(
        self, chunks: AsyncIterator[bytes] | Iterable[bytes], file_name: str, **options: Any
    ) -> DepositResult:
        """Deposit bytes that come in pieces (``DepositStream``): neither side holds the whole file
        (options as ``deposit``)."""
        header = pb.DepositRequest(file_name=file_name, **options)

        async def messages() -> AsyncIterator[pb.DepositChunk]:
            yield pb.DepositChunk(header=header)
            if isinstance(chunks, AsyncIterator):
                async for data in chunks:
                    yield pb.DepositChunk(data=data)
            else:
                for data in chunks:
                    yield pb.DepositChunk(data=data)

        return DepositResult.from_pb(await self._call(self._flows.DepositStream, messages()))

    async def deposit_file(self, path: str | Path, **options: Any) -> DepositResult:
        """Deposit a local file under its own name (options as ``deposit``); past ``STREAM_ABOVE_BYTES``
        it is streamed in chunks, so that neither side holds it whole."""
        path = Path(path)
        if (await asyncio.to_thread(path.stat)).st_size <= STREAM_ABOVE_BYTES:
            content = await asyncio.to_thread(path.read_bytes)
            return await self.deposit(content, path.name, **options)
        return await self.deposit_stream(_file_chunks(path), path.name, **options)

    async def get_flow(self, flow_number: str) -> Flow:
        return Flow.from_pb(await self._call(self._flows.GetFlow, pb.GetFlowRequest(flow_number=flow_number)))

    async def get_report(self, flow_number: str, *, format: str = "json") -> Report:
        request = pb.GetReportRequest(flow_number=flow_number, format=_FORMATS[format.lower()])  # type: ignore[arg-type]
        return Report.from_pb(await self._call(self._flows.GetReport, request))

    async def download_reports(self, flow_numbers: Iterable[str], *, format: str = "json") -> bytes:
        """A zip of the reports of ``flow_numbers``."""
        request = pb.DownloadReportsRequest(flow_numbers=list(flow_numbers), format=_FORMATS[format.lower()])  # type: ignore[arg-type]
        return b"".join([c.data async for c in self._stream(self._flows.DownloadReports, request)])

    # --- monitoring -------------------------------------------------------------------------------------
    async def search(self, **filters: Any) -> SearchPage:
        """One page of flows (filters: see ``search_request``)."""
        answer = await self._call(self._flows.Search, search_request(**filters))
        return SearchPage(tuple(Flow.from_pb(f) for f in answer.flows), answer.next_page_token, answer.total_count)

    async def search_all(self, **filters: Any) -> AsyncIterator[Flow]:
        """Every matching flow, page after page."""
        token = ""
        while True:
            page = await self.search(**{**filters, "page_token": token})
            for flow in page.flows:
                yield flow
            token = page.next_page_token
            if not token:
                return

    async def export_search(self, **filters: Any) -> AsyncIterator[bytes]:
        """Every match as CSV, in chunks (write them out as they come)."""
        async for chunk in self._stream(self._flows.ExportSearch, search_request(**filters)):
            yield chunk.data

    async def dashboard(
        self,
        *,
        issuer_sirets: Sequence[str] = (),
        syntaxes: Sequence[str] = (),
        deposited_from: datetime | None = None,
        deposited_to: datetime | None = None,
        top_errors: int = 0,
    ) -> Dashboard:
        request = pb.DashboardRequest(
            issuer_sirets=list(issuer_sirets), syntaxes=list(syntaxes), deposited_from=_ts(deposited_from),
            deposited_to=_ts(deposited_to), top_errors=top_errors,
        )  # fmt: skip
        return Dashboard.from_pb(await self._call(self._flows.Dashboard, request))

    async def watch_flow(self, flow_number: str) -> AsyncIterator[FlowEvent]:
        """The flow's history, then its status changes live; ends after a final status."""
        async for event in self._stream(self._flows.WatchFlow, pb.GetFlowRequest(flow_number=flow_number)):
            yield FlowEvent.from_pb(event)

    async def watch_flows(
        self,
        *,
        cursor: int = 0,
        from_start: bool = False,
        issuer_sirets: Sequence[str] = (),
        statuses: Sequence[str] = (),
    ) -> AsyncIterator[FlowEvent]:
        """Every visible status change; reconnect with the last event's ``cursor`` to resume exactly."""
        request = pb.WatchFlowsRequest(
            cursor=cursor, from_start=from_start, issuer_sirets=list(issuer_sirets),
            statuses=[status_value(s) for s in statuses],  # type: ignore[misc]
        )  # fmt: skip
        async for event in self._stream(self._flows.WatchFlows, request):
            yield FlowEvent.from_pb(event)

    async def wait_final(self, flow_number: str) -> Flow:
        """Follow the flow until it reaches a final status; return it then."""
        async for _ in self.watch_flow(flow_number):
            pass
        return await self.get_flow(flow_number)

    # --- administration --------------------------------------------------------------------------------
    async def grant_profile(self, login: str, siret: str, profile: str = "") -> None:
        await self._call(self._admin.GrantProfile, admin_pb.ProfileRequest(login=login, siret=siret, profile=profile))

    async def revoke_profile(self, login: str, siret: str, profile: str = "") -> None:
        await self._call(self._admin.RevokeProfile, admin_pb.ProfileRequest(login=login, siret=siret, profile=profile))

    async def create_technical_user(
        self, login: str, siret: str, *, rotate: bool = False, ruleset: str | None = None
    ) -> Token:
        """A new technical user of ``siret`` and its token. An existing login raises ``AlreadyExists``
        unless ``rotate``: then a new token replaces its old one, which stops working. ``ruleset``: the
        ruleset its flows are judged by ("" for the daemon's default; None: a rotated one keeps its own)."""
        request = admin_pb.CreateTechnicalUserRequest(login=login, siret=siret, rotate=rotate, ruleset=ruleset)
        answer = await self._call(self._admin.CreateTechnicalUser, request)
        return Token(answer.kind, answer.login, answer.token)

    async def create_token(self, login: str, *, kind: str = "technical") -> Token:
        answer = await self._call(self._admin.CreateToken, admin_pb.CreateTokenRequest(kind=kind, login=login))
        return Token(answer.kind, answer.login, answer.token)

    async def upsert_user(
        self, login: str, siret: str, *, name: str = "", role: str = "user", issue_token: bool = False
    ) -> str:
        """Create the user if needed and attach it to ``siret``; returns the new token, if one was issued."""
        request = admin_pb.UpsertUserRequest(
            login=login,
            name=name,
            siret=siret,
            role=_ROLES[role],
            issue_token=issue_token,  # type: ignore[arg-type]
        )
        return str((await self._call(self._admin.UpsertUser, request)).token)

    async def upsert_partner(
        self,
        code: str,
        siret: str,
        *,
        public_keys: Sequence[str] = (),
        status_files: bool = False,
        ruleset: str | None = None,
    ) -> str:
        """Create or update an EDI partner; ``ruleset`` as in ``create_technical_user`` (None: an existing
        partner keeps its own). Returns the ruleset its flows are judged by ("": the daemon's default)."""
        request = admin_pb.Partner(
            code=code, siret=siret, public_keys=list(public_keys), status_files=status_files, ruleset=ruleset
        )
        answer = await self._call(self._admin.UpsertPartner, request)
        return str(answer.ruleset)

    async def set_rejection_rule(self, partner_code: str, syntax: str, rule: str) -> None:
        request = admin_pb.SetRejectionRuleRequest(partner_code=partner_code, syntax=syntax, rule=rule)
        await self._call(self._admin.SetRejectionRule, request)

    async def reprocess_flow(self, flow_number: str, action: str, *, detail: str = "") -> Flow:
        """``action``: release or close (as WARNING) a held flow, or reprocess a WARNING flow."""
        if action not in _ACTIONS:
            raise ValueError(f"unknown action {action!r}; use release, close or reprocess")
        request = admin_pb.ReprocessFlowRequest(flow_number=flow_number, action=_ACTIONS[action], detail=detail)  # type: ignore[arg-type]
        return Flow.from_pb(await self._call(self._admin.ReprocessFlow, request))

    async def list_rejects(
        self,
        *,
        issuer_sirets: Sequence[str] = (),
        day_from: datetime | None = None,
        day_to: datetime | None = None,
    ) -> list[Reject]:
        request = admin_pb.ListRejectsRequest(
            issuer_sirets=list(issuer_sirets), day_from=_ts(day_from), day_to=_ts(day_to)
        )
        return [Reject.from_pb(r) for r in (await self._call(self._admin.ListRejects, request)).rejects]

    async def list_structures(self) -> list[Structure]:
        answer = await self._call(self._admin.ListStructures, admin_pb.ListStructuresRequest())
        return [Structure.from_pb(s) for s in answer.structures]

    # --- webhooks ----------------------------------------------------------------------------------------
    async def add_webhook(
        self,
        url: str,
        *,
        owner_kind: str = "",
        owner: str = "",
        statuses: Sequence[str] = (),
        format: str = "fluxdepot",
        secret: str = "",
    ) -> tuple[Webhook, str]:
        """Subscribe ``url`` to status changes (``statuses`` by name or code; empty: all) of the flows
        of ``owner`` (a structure's SIRET, a technical user's login or a partner's code; none: yourself,
        a technical user). Returns the subscription and its signing secret, shown this once."""
        request = admin_pb.AddWebhookRequest(
            owner_kind=owner_kind,
            owner=owner,
            url=url,
            secret=secret,
            statuses=[status_value(s) for s in statuses],  # type: ignore[misc]
            format=format,
        )
        answer = await self._call(self._admin.AddWebhook, request)
        return Webhook.from_pb(answer.webhook), str(answer.secret)

    async def list_webhooks(self) -> list[Webhook]:
        answer = await self._call(self._admin.ListWebhooks, admin_pb.ListWebhooksRequest())
        return [Webhook.from_pb(w) for w in answer.webhooks]

    async def remove_webhook(self, webhook_id: int) -> None:
        await self._call(self._admin.RemoveWebhook, admin_pb.RemoveWebhookRequest(id=webhook_id))

    async def webhook_deliveries(
        self, webhook_id: int = 0, *, dead_only: bool = False, limit: int = 0
    ) -> list[WebhookDelivery]:
        """The latest deliveries (newest first) of one webhook, or of every webhook you manage."""
        request = admin_pb.ListWebhookDeliveriesRequest(webhook_id=webhook_id, dead_only=dead_only, limit=limit)
        answer = await self._call(self._admin.ListWebhookDeliveries, request)
        return [WebhookDelivery.from_pb(d) for d in answer.deliveries]

    async def redeliver_webhook(self, delivery_id: int) -> None:
        await self._call(self._admin.RedeliverWebhook, admin_pb.RedeliverWebhookRequest(delivery_id=delivery_id))


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as fh:  # noqa: ASYNC230 - each read is done in a thread below
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk


class Client:
    """The blocking client: every ``AsyncClient`` method, run on a private event loop.

    Coroutine methods return their result; async-iterator methods (``watch_flows``, ``export_search``,
    ``search_all``...) return plain iterators. Not for use inside a running event loop (use
    ``AsyncClient`` there).
    """

    def __init__(self, target: str = DEFAULT_TARGET, token: str | None = None, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._client: AsyncClient = self._runner.run(_make_client(target, token, options))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if inspect.isasyncgenfunction(method):
            return functools.wraps(method)(lambda *a, **k: self._iterate(method(*a, **k)))
        if inspect.iscoroutinefunction(method):
            return functools.wraps(method)(lambda *a, **k: self._runner.run(method(*a, **k)))
        raise AttributeError(name)

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._runner.run(anext(items))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(items.aclose())  # type: ignore[attr-defined]


async def _make_client(target: str, token: str | None, options: dict[str, Any]) -> AsyncClient:
    return AsyncClient(target, token, **options)
