"""Build and start the gRPC server: ``FlowService``, ``AdminService``, health and reflection (DESIGN §10).

The daemon (``gateway.daemon``, the composition root) calls ``start_grpc_server`` with the application
layer it built (``engine.services``) and the authenticator; nothing here builds a collaborator or is a
module-level singleton. Shutdown is the caller's:
``await health.enter_graceful_shutdown()`` (every service NOT_SERVING), then ``await server.stop(grace)``.

The server accepts messages a little larger than the flow size limit, so a deposit over the limit reaches
the engine and the client reads the engine's ``RESOURCE_EXHAUSTED`` message naming the limit rather than
grpc's generic one; anything much larger is cut by grpc itself before it is buffered.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2 as health_pb
from grpc_health.v1 import health_pb2_grpc as health_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from engine.model import Limits
from engine.services.admin import AdminService
from engine.services.flows import FlowsService
from engine.services.watch import WatchService
from fluxdepot.v1 import admin_pb2 as admin_pb
from fluxdepot.v1 import admin_pb2_grpc as admin_grpc
from fluxdepot.v1 import flows_pb2 as flows_pb
from fluxdepot.v1 import flows_pb2_grpc as flows_grpc
from gateway.grpc_admin import AdminServicer
from gateway.grpc_auth import Authenticator
from gateway.grpc_flows import FlowServicer

MESSAGE_OVERHEAD_BYTES = 64 * 1024  # the other fields of a DepositRequest, beyond its content
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # default [grpc] max_message_bytes: a unary Deposit's content at most
MAX_SEND_BYTES = 16 * 1024 * 1024  # reports and chunks stay far below
FLOW_SERVICE = flows_pb.DESCRIPTOR.services_by_name["FlowService"].full_name
ADMIN_SERVICE = admin_pb.DESCRIPTOR.services_by_name["AdminService"].full_name


@dataclass(frozen=True)
class TlsFiles:
    """Server TLS: certificate chain and key (PEM); with ``client_ca``, mutual TLS (client certificate
    required and checked against that CA)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        ca = self.client_ca.read_bytes() if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


class BindFailed(OSError):
    """grpc could not bind the address (it does not say why: ``gateway.startup.bind_error`` finds out)."""


CallObserver = Callable[[str, str], None]  # (method, status code name) after each call: metrics


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """Bind the RPC method to structlog's context for the duration of each call (STYLE rules 9, 15),
    and report each call's method and final status code to ``on_call``."""

    def __init__(self, on_call: CallObserver | None = None) -> None:
        self._on_call = on_call

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        rpc = handler_call_details.method
        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            bound = _bind_unary(handler.unary_unary, rpc, self._on_call)
            return handler._replace(unary_unary=bound)  # type: ignore[attr-defined,no-any-return]
        if handler.stream_unary and inspect.iscoroutinefunction(handler.stream_unary):  # DepositStream
            bound = _bind_unary(handler.stream_unary, rpc, self._on_call)
            return handler._replace(stream_unary=bound)  # type: ignore[attr-defined,no-any-return]
        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            streamed = _bind_stream(handler.unary_stream, rpc, self._on_call)
            return handler._replace(unary_stream=streamed)  # type: ignore[attr-defined,no-any-return]
        return handler


def _code_name(context: grpc.aio.ServicerContext, failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


def _bind_unary(
    inner: Callable[..., Awaitable[Any]], rpc: str, on_call: CallObserver | None
) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        failed = True
        try:
            with structlog.contextvars.bound_contextvars(rpc=rpc):
                result = await inner(request, context)
            failed = False
            return result
        finally:
            if on_call is not None:
                on_call(rpc, _code_name(context, failed))

    return call


def _bind_stream(
    inner: Callable[..., AsyncIterator[Any]], rpc: str, on_call: CallObserver | None
) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        failed = True
        try:
            with structlog.contextvars.bound_contextvars(rpc=rpc):
                async for item in inner(request, context):
                    yield item
            failed = False
        finally:
            if on_call is not None:
                on_call(rpc, _code_name(context, failed))

    return call


async def start_grpc_server(
    limits: Limits,
    listen: str,
    *,
    flows: FlowsService,
    watch: WatchService,
    auth: Authenticator,
    admin: AdminService,
    health: HealthServicer,
    tls: TlsFiles | None = None,
    on_call: CallObserver | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> tuple[grpc.aio.Server, int]:
    """Start serving on ``listen`` (``HOST:PORT``; port 0 picks one) and return the server and its port.

    ``health`` is the caller's handle on the health service (the daemon sets NOT_SERVING on shutdown).
    """
    server = grpc.aio.server(
        interceptors=[CallContextInterceptor(on_call)],
        options=[
            # A unary Deposit is held whole by grpc before any check: bigger files come by DepositStream.
            ("grpc.max_receive_message_length", min(limits.max_flow_bytes, max_message_bytes) + MESSAGE_OVERHEAD_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            # grpc shares a port with any other process by default: a second daemon would answer half the
            # calls from another data folder. A port in use must be an error.
            ("grpc.so_reuseport", 0),
        ],
    )
    flows_grpc.add_FlowServiceServicer_to_server(FlowServicer(flows, watch, auth), server)
    admin_grpc.add_AdminServiceServicer_to_server(AdminServicer(admin, flows, auth), server)
    health_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", FLOW_SERVICE, ADMIN_SERVICE):
        await health.set(name, health_pb.HealthCheckResponse.SERVING)
    services = (FLOW_SERVICE, ADMIN_SERVICE, health_pb.DESCRIPTOR.services_by_name["Health"].full_name)
    reflection.enable_server_reflection((*services, reflection.SERVICE_NAME), server)
    credentials = None if tls is None else tls.credentials()
    try:
        port = server.add_insecure_port(listen) if credentials is None else server.add_secure_port(listen, credentials)
    except RuntimeError:  # recent grpc releases raise where older ones returned 0
        port = 0
    if port == 0:
        raise BindFailed(f"cannot listen on {listen} for gRPC")
    await server.start()
    return server, port
