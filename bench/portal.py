"""The portal's pages on the big store, beside the same gRPC calls in the same run: Search (first page of
every flow the caller sees, 50 rows; and of a status without flows), Dashboard and the report page, against
gRPC ``Search`` (50 rows), ``Dashboard`` and ``GetReport`` (JSON).

The store is ``bench.search``'s (``--flows`` flows over 1,000 issuers, built once under ``bench/out`` and
reused), copied to a temporary folder, with the demo directory plus the 1,000 issuers imported: the demo
manager holds flow follow-up on all of them (it sees every flow, like an operator) and the demo viewer on
5 of them. One server process serves both faces on that store as the daemon builds them (the portal's
context from ``gateway.daemon.portal_context``); this process logs in through the log-in form (the demo
passwords) and uses the demo tokens on gRPC, one call at a time.

Reported per page: the server's own time (the ``ms`` of the daemon's ``http_request`` log line: routing,
session, the use case, the template) and the client's latency over loopback for both faces (the only
figure gRPC gives; it adds the client's own work and the loopback round trip). Target: portal p99 <= 50 ms
of server time for Search and Dashboard.

    .venv/bin/python -m bench.portal [--flows 1000000] [--runs 200] [--rebuild]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx

from bench import search as search_bench
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc

TARGET_P99_MS = 50.0
WARM_UP_CALLS = 10
SLOW_S, SLOW_RUNS = 0.5, 10  # a call this slow is timed only this many times (the manager's Dashboard)
PAGE = 50  # the portal's search page
# A status bench.search's store holds no flow in: its search walked the whole search order (2.4 s) before.
RARE, RARE_PB = "IN_TRAITE_SE_CPP", pb.FLOW_STATUS_PROCESSED_SE_CPP
VIEWER_ISSUERS = 5
WHO = {
    "manager": ("demo-manager-password", "demo-manager-token", "manager (1,000 issuers: every flow)"),
    "viewer": ("demo-viewer-password", "demo-viewer-token", f"viewer ({VIEWER_ISSUERS} issuers)"),
}


def viewer_issuers() -> list[str]:
    return random.Random(11).sample(search_bench.ISSUERS, VIEWER_ISSUERS)


# --- the server: both faces on the big store ------------------------------------------------------------


def _directory() -> Any:
    """The demo directory, plus the big store's 1,000 issuers followed by the manager (5 by the viewer)."""
    from engine.directory import Membership, Profile, Role, Structure
    from engine.directory_file import load_directory
    from tests.harness import DEMO_DIRECTORY

    demo = load_directory(DEMO_DIRECTORY)
    issuers = search_bench.ISSUERS
    structures = tuple(Structure(siret, f"Bench issuer {n}") for n, siret in enumerate(issuers))
    memberships = tuple(Membership("manager", siret, Role.PRIMARY_MANAGER) for siret in issuers)
    memberships += tuple(Membership("viewer", siret, Role.USER) for siret in viewer_issuers())
    profiles = tuple(Profile("manager", siret) for siret in issuers)
    profiles += tuple(Profile("viewer", siret) for siret in viewer_issuers())
    return replace(
        demo,
        structures=demo.structures + structures,
        memberships=demo.memberships + memberships,
        profiles=demo.profiles + profiles,
    )


async def _serve(ports_out: multiprocessing.SimpleQueue, db: str) -> None:  # type: ignore[type-arg]
    import secrets

    from grpc_health.v1._async import HealthServicer

    from engine.blobs import BlobStore
    from engine.deposit import DepositService
    from engine.model import Limits
    from engine.services.admin import AdminService
    from engine.services.auth import TokenAuthenticator
    from engine.services.flows import FlowsService
    from engine.services.oauth import AccessTokens
    from engine.services.watch import WatchService
    from engine.status import FlowStatus
    from engine.store import open_store
    from gateway.daemon import portal_context
    from gateway.grpc_server import start_grpc_server
    from gateway.http.app import build_app
    from gateway.http.auth import HttpAuth
    from gateway.http.portal.context import PORTAL
    from gateway.http.rate import RateLimiter
    from gateway.http.server import HttpServer
    from gateway.http.services import HttpServices
    from gateway.settings import PortalSection, WatchdogSection

    store = await open_store(f"sqlite:///{db}")
    await store.import_directory(_directory())
    limits = Limits()
    stuck = {FlowStatus[k]: v for k, v in WatchdogSection().stuck_after_s.items()}  # the daemon's defaults
    deposits = DepositService(store, BlobStore(Path(db).parent / "blobs"), limits)
    flows = FlowsService(store, deposits, stuck_after_s=stuck)
    watch = WatchService(store, wait_s=15.0)
    tokens = TokenAuthenticator(store, access_tokens=AccessTokens(secrets.token_bytes(32), ttl_s=900))
    admin = AdminService(store, tokens)
    server, grpc_port = await start_grpc_server(
        limits, "127.0.0.1:0", flows=flows, watch=watch, auth=tokens, admin=admin, health=HealthServicer()
    )
    services = HttpServices(flows, watch, admin, HttpAuth(tokens, RateLimiter(1e9, 10**9)), limits)
    services.extra[PORTAL] = portal_context(store, PortalSection(max_login_failures=1000))
    http = HttpServer(build_app(services), grace_s=5)
    http_port = await http.start("127.0.0.1:0")
    gc.freeze()  # as the daemon does once started (gateway.daemon.Daemon.start)
    ports_out.put((grpc_port, http_port))
    await server.wait_for_termination()


def _child(ports_out: multiprocessing.SimpleQueue, db: str, log: str) -> None:  # type: ignore[type-arg]
    from gateway.logs import configure_logging

    sys.stdout = open(log, "w", buffering=1)  # noqa: SIM115 - the server's JSON log lines, read for their ms
    configure_logging("info", "json")
    asyncio.run(_serve(ports_out, db))


# --- the measures ---------------------------------------------------------------------------------------


def _server_ms(log: Path, request_ids: set[str]) -> list[float]:
    """The ``ms`` of the ``http_request`` lines of these requests (in seconds, like the client samples)."""
    out = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "http_request" and event.get("request_id") in request_ids:
            out.append(float(event["ms"]) / 1000)
    return out


async def _login(client: httpx.AsyncClient, login: str, password: str) -> None:
    page = await client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = await client.post("/login", data={"csrf_token": token, "login": login, "password": password, "next": "/"})
    assert done.status_code == 303, done.text


async def _timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    """``runs`` timed calls after the warm-up; a call slower than ``SLOW_S`` is timed ``SLOW_RUNS`` times
    (its p99 is then its worst)."""
    started = time.perf_counter()
    await call()
    if time.perf_counter() - started > SLOW_S:
        runs = min(runs, SLOW_RUNS)
    else:
        for _ in range(WARM_UP_CALLS):
            await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(grpc_port: int, http_port: int, log: Path, runs: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.FlowServiceStub(channel)
        for login, (password, token, label) in WHO.items():
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=60) as client:
                await _login(client, login, password)
                for name, figures in await _measure_one(client, stub, token, log, runs):
                    rows.append((label, name, *figures))
    return rows


async def _measure_one(
    client: httpx.AsyncClient, stub: pb_grpc.FlowServiceStub, token: str, log: Path, runs: int
) -> list[tuple[str, list[str]]]:
    """Each page and its gRPC call for one logged-in caller: (name, [server, HTTP, gRPC] x [p50, p99])."""
    metadata = (("authorization", f"Bearer {token}"),)
    ids: list[str] = []  # the request ids of the portal pages, in order (the last ``runs`` are measured)

    async def page(path: str) -> None:
        request_id = os.urandom(8).hex()
        response = await client.get(path, headers={"X-Request-Id": request_id})
        assert response.status_code == 200, (path, response.status_code)
        ids.append(request_id)

    # the report of a flow with errors the caller sees (the newest rejected one)
    rejected = pb.SearchRequest(page_size=1, statuses=[pb.FLOW_STATUS_REJECTED])
    number = (await stub.Search(rejected, metadata=metadata)).flows[0].flow_number
    measures: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]] = [
        (
            "Search (first page, 50 rows)",
            lambda: page("/search?run=1"),
            lambda: stub.Search(pb.SearchRequest(page_size=PAGE), metadata=metadata),
        ),
        (
            "Search (a status without flows)",
            lambda: page(f"/search?run=1&status={RARE}"),
            lambda: stub.Search(pb.SearchRequest(page_size=PAGE, statuses=[RARE_PB]), metadata=metadata),
        ),
        (
            "Dashboard (every followed issuer)",
            lambda: page("/dashboard"),
            lambda: stub.Dashboard(pb.DashboardRequest(), metadata=metadata),
        ),
        (
            "Report (one rejected flow)",
            lambda: page(f"/flows/{number}"),
            lambda: stub.GetReport(pb.GetReportRequest(flow_number=number), metadata=metadata),
        ),
    ]
    out = []
    for name, http_call, grpc_call in measures:
        ids.clear()
        http_client = await _timed(http_call, runs)
        grpc_client = await _timed(grpc_call, runs)
        await asyncio.sleep(0.2)  # the last log lines reach the file
        server = _server_ms(log, set(ids[-len(http_client) :]))
        figures = [f"{search_bench.pct(s, q):.1f}" for s in (server, http_client, grpc_client) for q in (0.5, 0.99)]
        out.append((name, figures))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    cached = search_bench.OUT / f"search-v2-{args.flows}.db"  # bench.search's store, built once
    if args.rebuild or not cached.exists():
        started = time.perf_counter()
        search_bench.build(cached, args.flows)
        print(f"built {cached} with {args.flows} flows in {time.perf_counter() - started:.0f} s")
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        db = Path(tmp) / "fluxdepot.db"
        shutil.copyfile(cached, db)  # the directory is imported into the copy: the cache stays as built
        log = Path(tmp) / "server.log"
        context = multiprocessing.get_context("spawn")
        ports: multiprocessing.SimpleQueue[tuple[int, int]] = context.SimpleQueue()
        server = context.Process(target=_child, args=(ports, str(db), str(log)), daemon=True)
        server.start()
        try:
            grpc_port, http_port = ports.get()
            rows = asyncio.run(measure(grpc_port, http_port, log, args.runs))
        finally:
            server.terminate()
            server.join(10)
    columns = ("server p50", "server p99", "HTTP p50", "HTTP p99", "gRPC p50", "gRPC p99")
    header = f"{'who':<38} {'page / call':<34} " + " ".join(f"{c:>10}" for c in columns)
    print(f"portal pages and gRPC calls on {args.flows:,} flows, {args.runs} calls each, ms")
    print(header)
    print("-" * len(header))
    for who, what, *figures in rows:
        print(f"{who:<38} {what:<34} " + " ".join(f"{f:>10}" for f in figures))
    print(
        "(server: the portal's http_request log line ms; HTTP/gRPC: client latency over loopback, one call at"
        f" a time; target: Search and Dashboard server p99 <= {TARGET_P99_MS:.0f} ms)"
    )


if __name__ == "__main__":
    main()
