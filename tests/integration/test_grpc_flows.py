"""FlowService end to end: a real grpc.aio server on loopback, the real engine and store, the generated
stub and the Python client as callers (STYLE rule 16)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from clients import errors as client_errors
from engine.cpu_pool import CpuPool
from engine.model import Limits
from fluxdepot.v1 import flows_pb2 as pb
from tests.grpc_support import MANAGER, PROVIDER, SUPPLIER, TECH, VIEWER, GrpcEnv, invoice, metadata


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    e = await GrpcEnv.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=200_000))
    try:
        yield e
    finally:
        await e.close()


async def test_deposit_then_get_flow_and_reports(env: GrpcEnv) -> None:
    """A technical user deposits (API channel, its own structure by default); the flow is RECEIVED and
    durable; once processed, GetFlow, GetReport (JSON and XML) and DownloadReports tell the outcome."""
    content = invoice()
    answer = await env.flows.Deposit(
        pb.DepositRequest(file_name="fa1.xml", content=content, sha256=hashlib.sha256(content).hexdigest()),
        metadata=metadata(TECH),
    )
    assert len(answer.flow_number) == 25 and answer.status == pb.FLOW_STATUS_RECEIVED
    assert answer.status_code == "IN_RECU" and answer.syntax == "IN_DP_E1_UBL_INVOICE"
    assert answer.flow.channel == pb.CHANNEL_API and answer.flow.issuer_siret == SUPPLIER
    await env.harness.process_all()

    flow = await env.flows.GetFlow(pb.GetFlowRequest(flow_number=answer.flow_number), metadata=metadata(TECH))
    assert flow.status == pb.FLOW_STATUS_INTEGRATED and flow.status_code == "IN_INTEGRE" and flow.final
    assert (flow.invoice_count, flow.integrated_count) == (1, 1)

    report = await env.flows.GetReport(pb.GetReportRequest(flow_number=answer.flow_number), metadata=metadata(TECH))
    assert json.loads(report.content)["status_code"] == "IN_INTEGRE"
    assert report.next_action.code == "NONE" and report.invoices[0].number == "FA-2026-0001"
    assert next(h.status_code for h in report.history) == "IN_RECU"
    xml = await env.flows.GetReport(
        pb.GetReportRequest(flow_number=answer.flow_number, format=pb.REPORT_FORMAT_XML),
        metadata=metadata(TECH),
    )
    assert xml.content.startswith(b"<?xml") and xml.content_type == "application/xml"

    data = b"".join(
        [c.data async for c in env.flows.DownloadReports(
            pb.DownloadReportsRequest(flow_numbers=[answer.flow_number]), metadata=metadata(TECH)
        )]
    )  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == [f"{answer.flow_number}.json"]


async def test_deposit_refusals_name_the_field_or_the_limit(env: GrpcEnv) -> None:
    """Over the size limit → RESOURCE_EXHAUSTED naming the limit (the engine's message, not grpc's);
    a wrong checksum or file name → INVALID_ARGUMENT naming the field; another issuer → PERMISSION_DENIED."""
    async with env.client(TECH) as client:
        with pytest.raises(client_errors.ResourceExhausted, match="200000 bytes"):
            await client.deposit(b"x" * 200_001, "big.xml")
        with pytest.raises(client_errors.InvalidArgument, match="sha256"):
            await client.deposit(invoice(), "a.xml", sha256="0" * 64)
        with pytest.raises(client_errors.InvalidArgument, match="file_name"):
            await client.deposit(invoice(), "../a.xml")
        with pytest.raises(client_errors.InvalidArgument, match="syntax"):
            await client.deposit(invoice(), "a.xml", syntax="IN_DP_E9_NOPE")
        with pytest.raises(client_errors.PermissionDenied):
            await client.deposit(invoice(), "a.xml", issuer_siret="73282932000074")
    assert await env.harness.store.all_flow_numbers() == []  # nothing was created


async def test_tracking_id_makes_a_deposit_idempotent(env: GrpcEnv) -> None:
    """The same tracking id twice returns the first flow, flagged already_deposited."""
    async with env.client(TECH) as client:
        first = await client.deposit(invoice(), "a.xml", tracking_id="order-42")
        again = await client.deposit(invoice(), "a.xml", tracking_id="order-42")
    assert again.flow_number == first.flow_number and again.already_deposited and not first.already_deposited


async def test_portal_user_deposits_on_the_portal_channel(env: GrpcEnv) -> None:
    """A portal user deposits for a structure they belong to (PORTAL channel); the manager, who belongs
    to two structures, must name the issuer."""
    async with env.client(VIEWER) as viewer, env.client(MANAGER) as manager:
        receipt = await viewer.deposit(invoice(), "portal.xml")
        with pytest.raises(client_errors.InvalidArgument, match="issuer_siret"):
            await manager.deposit(invoice(), "portal.xml")
        on_provider = await manager.deposit(invoice(), "p.xml", issuer_siret=PROVIDER)
        flow = await manager.get_flow(receipt.flow_number)  # the manager follows the supplier
    assert flow.channel == "PORTAL" and flow.depositor == "user:viewer" and flow.issuer_siret == SUPPLIER
    assert on_provider.flow_number


async def test_search_pages_filters_and_export(env: GrpcEnv) -> None:
    """Search sorts by issuer then newest first, pages with tokens, counts every match; a bad token is
    INVALID_ARGUMENT; ExportSearch streams the same matches as CSV."""
    async with env.client(TECH) as client:
        numbers = [(await client.deposit(invoice(f"FA-{i}"), f"f{i}.xml")).flow_number for i in range(5)]
        await env.harness.process_all()
        first = await client.search(page_size=2)
        assert first.total_count == 5 and len(first.flows) == 2 and first.next_page_token
        seen = [f.flow_number async for f in client.search_all(page_size=2)]
        assert seen == sorted(numbers, reverse=True)
        only = await client.search(file_name="f3", statuses=["IN_INTEGRE", "REJECTED"])
        assert [f.flow_number for f in only.flows] == [numbers[3]]
        with pytest.raises(client_errors.InvalidArgument, match="page_token"):
            await client.search(page_token="not-a-token")
        with pytest.raises(client_errors.InvalidArgument, match="page_size"):
            await client.search(page_size=1001)
        data = b"".join([c async for c in client.export_search()])
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [r["flow_number"] for r in rows] == seen and rows[0]["status_code"] == "IN_INTEGRE"


async def test_dashboard_counts_per_issuer_and_status(env: GrpcEnv) -> None:
    """Dashboard rows count flows per issuer × status with totals; the manager sees their structures'."""
    async with env.client(TECH) as tech, env.client(MANAGER) as manager:
        await tech.deposit(invoice("FA-1"), "ok.xml")
        await tech.deposit(invoice("FA-2", service_code=None), "ko.xml")
        await tech.deposit(invoice("FA-3"), "waiting.xml")
        await env.harness.process_all()
        await tech.deposit(invoice("FA-4"), "new.xml")
        board = await manager.dashboard()
    totals = {t.status: t.count for t in board.totals}
    assert totals == {"RECEIVED": 1, "INTEGRATED": 2, "REJECTED": 1} and board.total_count == 4
    assert {(r.issuer_siret, r.status) for r in board.rows} >= {(SUPPLIER, "REJECTED")}
    assert "RECEIVED" in board.oldest
    assert board.stuck == {"RECEIVED": 0}  # the watchdog's age (1 h in this server) is not reached


async def test_dashboard_shows_stuck_flows(env: GrpcEnv) -> None:
    """A flow left in RECEIVED past the watchdog's age is counted as stuck by Dashboard."""
    async with env.client(TECH) as tech, env.client(MANAGER) as manager:
        receipt = await tech.deposit(invoice("FA-STUCK"), "stuck.xml")
        with sqlite3.connect(env.harness.root / "fluxdepot.db") as db:
            db.execute(
                "UPDATE flows SET status_changed_at = '2000-01-01T00:00:00.000000+00:00' WHERE flow_number = ?",
                (receipt.flow_number,),
            )
        board = await manager.dashboard()
    assert board.stuck == {"RECEIVED": 1}


async def test_watch_flow_streams_until_final(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """WatchFlow replays the history then follows live changes and ends after the final status."""
    env = await GrpcEnv.start(tmp_path, cpu_pool, workers=True)
    try:
        async with env.client(TECH) as client:
            receipt = await client.deposit(invoice(), "w.xml")
            events = [e async for e in client.watch_flow(receipt.flow_number)]
    finally:
        await env.close()
    statuses = [e.status for e in events]
    assert statuses[0] == "RECEIVED" and statuses[-1] == "INTEGRATED" and events[-1].final
    assert [e.cursor for e in events] == sorted(e.cursor for e in events)


async def test_unauthenticated_calls_are_refused(env: GrpcEnv) -> None:
    """No token or a wrong one → UNAUTHENTICATED, on unary and streaming methods alike."""
    for token in (None, "wrong-token"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await env.flows.GetFlow(pb.GetFlowRequest(flow_number="X"), metadata=metadata(token))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in env.flows.ExportSearch(pb.SearchRequest(), metadata=metadata(token)):
                pass
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
