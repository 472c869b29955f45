"""OAuth2 access tokens (``engine.services.oauth``) are accepted wherever static tokens are: over gRPC,
with the technical user's current rights, until they expire; a forged or foreign-key token never is."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from grpc_health.v1._async import HealthServicer

from clients.client import AsyncClient
from clients.errors import Unauthenticated
from engine.cpu_pool import CpuPool
from engine.services.admin import AdminService
from engine.services.auth import TokenAuthenticator
from engine.services.flows import FlowsService
from engine.services.oauth import AccessTokens
from engine.services.watch import WatchService
from engine.status import FlowStatus
from gateway.grpc_server import start_grpc_server
from tests.harness import Harness, now

TECH, TECH_LOGIN = "demo-technical-token", "TECH_1_papeterie@demo"


async def test_a_grpc_call_with_an_access_token_acts_as_the_technical_user(tmp_path: Path, cpu_pool: CpuPool) -> None:
    harness = await Harness.open(tmp_path, cpu_pool)
    clock = [1_000_000.0]
    key = secrets.token_bytes(32)
    tokens = TokenAuthenticator(
        harness.store, ttl_s=0, access_tokens=AccessTokens(key, ttl_s=60, clock=lambda: clock[0])
    )
    server, port = await start_grpc_server(
        harness.limits,
        "127.0.0.1:0",
        flows=FlowsService(harness.store, harness.deposits, stuck_after_s={FlowStatus.RECEIVED: 3600.0}, clock=now),
        watch=WatchService(harness.store, wait_s=0.5),
        auth=tokens,
        admin=AdminService(harness.store, tokens),
        health=HealthServicer(),
        tls=None,
    )
    try:
        issued = await tokens.client_credentials(TECH_LOGIN, TECH)
        assert issued is not None and issued.expires_in == 60
        assert await tokens.client_credentials(TECH_LOGIN, "wrong") is None
        assert await tokens.client_credentials("demo-manager", "demo-manager-token") is None  # users are not clients
        async with AsyncClient(f"127.0.0.1:{port}", issued.token, timeout_s=30) as client:
            receipt = await client.deposit(b"<Invoice/>", file_name="a.xml")
            assert (await client.get_flow(receipt.flow_number)).flow_number == receipt.flow_number
            clock[0] += 120  # expired (beyond the leeway)
            with pytest.raises(Unauthenticated):
                await client.get_flow(receipt.flow_number)
        forged = AccessTokens(secrets.token_bytes(32), ttl_s=60, clock=lambda: clock[0]).issue(TECH_LOGIN)
        async with AsyncClient(f"127.0.0.1:{port}", forged.token, timeout_s=30) as client:
            with pytest.raises(Unauthenticated):
                await client.search()
    finally:
        await server.stop(0)
        await harness.close()
