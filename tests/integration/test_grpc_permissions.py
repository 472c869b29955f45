"""The permission matrix of DESIGN §6: every FlowService method × every kind of caller.

Callers: the supplier's technical user (deposited the flow), a primary manager holding flow follow-up,
a plain user holding it, a user of the structure without it (the demo viewer), a user of another
structure, an invoicing provider's technical user, a wrong token and no token. A flow a caller may not
see answers NOT_FOUND exactly like a missing one; searches, counts, exports and feeds never show it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from engine.cpu_pool import CpuPool
from fluxdepot.v1 import flows_pb2 as pb
from tests.callers import CALLERS, SEES, UNAUTHENTICATED, add_callers
from tests.grpc_support import MANAGER, SUPPLIER, TECH, GrpcEnv, invoice, metadata

OK, NOT_FOUND, DENIED, UNAUTH = "OK", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED"


def _expected_visibility(caller: str) -> str:
    if caller in UNAUTHENTICATED:
        return UNAUTH
    return OK if caller in SEES else NOT_FOUND


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    e = await GrpcEnv.start(tmp_path, cpu_pool)
    try:
        await add_callers(e.harness.store)
        yield e
    finally:
        await e.close()


async def _outcome(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return OK


async def _first_event(env: GrpcEnv, token: str | None) -> str:
    stream = env.flows.WatchFlows(pb.WatchFlowsRequest(from_start=True), metadata=metadata(token))
    try:
        await asyncio.wait_for(stream.read(), timeout=1.0)
    except TimeoutError:
        return "NO_EVENT"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    finally:
        stream.cancel()
    return OK


async def _stream_outcome(stream: grpc.aio.UnaryStreamCall) -> tuple[str, bytes]:  # type: ignore[type-arg]
    data = b""
    try:
        async for chunk in stream:
            data += getattr(chunk, "data", b"")
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, b""
    return OK, data


async def test_read_methods_matrix(env: GrpcEnv) -> None:
    """GetFlow, GetReport, DownloadReports, WatchFlow: only callers who may see the flow get it, others
    get NOT_FOUND (as for a missing flow); Search, ExportSearch, Dashboard and WatchFlows never include it
    for them (no error: zero results); bad or no token is UNAUTHENTICATED everywhere."""
    receipt = await env.flows.Deposit(pb.DepositRequest(file_name="a.xml", content=invoice()), metadata=metadata(TECH))
    number = receipt.flow_number
    await env.harness.process_all()
    got: dict[tuple[str, str], str] = {}
    want: dict[tuple[str, str], str] = {}
    for caller, token in CALLERS.items():
        md = metadata(token)
        visible = _expected_visibility(caller)
        for method, call in (
            ("GetFlow", env.flows.GetFlow(pb.GetFlowRequest(flow_number=number), metadata=md)),
            ("GetReport", env.flows.GetReport(pb.GetReportRequest(flow_number=number), metadata=md)),
        ):
            got[caller, method] = await _outcome(call)
            want[caller, method] = visible
        got[caller, "GetFlow(missing)"] = await _outcome(
            env.flows.GetFlow(pb.GetFlowRequest(flow_number="CPP0011100000000000999999"), metadata=md)
        )
        want[caller, "GetFlow(missing)"] = UNAUTH if visible == UNAUTH else NOT_FOUND
        got[caller, "DownloadReports"], _ = await _stream_outcome(
            env.flows.DownloadReports(pb.DownloadReportsRequest(flow_numbers=[number]), metadata=md)
        )
        want[caller, "DownloadReports"] = visible
        events = env.flows.WatchFlow(pb.GetFlowRequest(flow_number=number), metadata=md)
        got[caller, "WatchFlow"], _ = await _stream_outcome(events)  # type: ignore[arg-type]
        want[caller, "WatchFlow"] = visible

        try:
            page = await env.flows.Search(pb.SearchRequest(flow_number=number), metadata=md)
            got[caller, "Search"] = f"{page.total_count} found"
        except grpc.aio.AioRpcError as exc:
            got[caller, "Search"] = exc.code().name
        want[caller, "Search"] = {OK: "1 found", NOT_FOUND: "0 found"}.get(visible, visible)

        outcome, data = await _stream_outcome(env.flows.ExportSearch(pb.SearchRequest(), metadata=md))
        got[caller, "ExportSearch"] = f"{len(data.splitlines()) - 1} rows" if outcome == OK else outcome
        want[caller, "ExportSearch"] = {OK: "1 rows", NOT_FOUND: "0 rows"}.get(visible, visible)

        try:
            board = await env.flows.Dashboard(pb.DashboardRequest(issuer_sirets=[SUPPLIER]), metadata=md)
            got[caller, "Dashboard"] = f"{board.total_count} counted"
        except grpc.aio.AioRpcError as exc:
            got[caller, "Dashboard"] = exc.code().name
        want[caller, "Dashboard"] = {OK: "1 counted", NOT_FOUND: "0 counted"}.get(visible, visible)

        got[caller, "WatchFlows"] = await _first_event(env, token)
        want[caller, "WatchFlows"] = {NOT_FOUND: "NO_EVENT"}.get(visible, visible)
    assert got == want


async def test_deposit_matrix(env: GrpcEnv) -> None:
    """Deposit for the supplier: its technical user, its members (with or without the profile) and the
    provider's technical user may; a user of another structure may not; bad or no token is refused."""
    want = {
        "technical": OK,
        "manager": OK,
        "user_with_profile": OK,
        "user_without_profile": OK,
        "other_structure_user": DENIED,
        "provider_technical": OK,
        "wrong_token": UNAUTH,
        "no_token": UNAUTH,
    }
    got = {}
    for caller, token in CALLERS.items():
        request = pb.DepositRequest(file_name="d.xml", content=invoice(), issuer_siret=SUPPLIER)
        got[caller] = await _outcome(env.flows.Deposit(request, metadata=metadata(token)))
    assert got == want
    page = await env.flows.Search(pb.SearchRequest(), metadata=metadata(MANAGER))
    channels = {f.depositor: pb.Channel.Name(f.channel) for f in page.flows}
    assert channels["tech:TECH_1_papeterie@demo"] == "CHANNEL_API"
    assert channels["user:viewer"] == "CHANNEL_PORTAL"
    assert channels["tech:TECH_provider"] == "CHANNEL_API"
