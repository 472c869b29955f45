"""The HTTP faces against gRPC: AFNOR ``POST /v1/flows`` deposits/s beside gRPC ``Deposit`` in the same run,
and the AFNOR search's first page (``updatedAfter`` order) on a big store beside the gRPC search's.

Deposits: one server process serving both faces on one fresh SQLite store, as the daemon does (durable
deposits, the demo directory, the demo technical token); the load (this process) alternates gRPC and HTTP
loads of ``--seconds`` at ``--concurrency`` for ``--rounds`` rounds, each deposit a distinct ~20 KB UBL
invoice (HTTP: multipart ``flowInfo`` + ``file`` with httpx; gRPC: the generated stub). Target: HTTP >= 0.8x
gRPC at concurrency 16.

Search: ``bench.search``'s store of ``--flows`` flows over 1,000 issuers (built once under ``bench/out``),
a user following 5 issuers and an operator; p50/p99 of the store call each face makes for its first
page: ``search_changed`` (AFNOR, 100 flows, oldest change first) and ``search`` (gRPC, 100 flows). Target:
p99 <= 10 ms.

    .venv/bin/python -m bench.http [--only deposits search webhooks] [--flows 1000000] [--seconds 3]

``--only webhooks`` (and the default run) adds the webhook deliveries/s row of ``bench.http_webhooks``
when that module offers ``row(args) -> str`` (``ROWS`` is the list of measures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx

from bench import search as search_bench
from bench.deposit import INVOICE_BYTES, TOKEN, Result, _invoice
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc

TARGET_RATIO = 0.8
TARGET_SEARCH_P99_MS = 10.0
WARM_UP_CALLS = 20
PAGE = 100


# --- the server: both faces on one store ----------------------------------------------------------------


async def _serve(ports_out: multiprocessing.SimpleQueue, root: str) -> None:  # type: ignore[type-arg]
    from grpc_health.v1._async import HealthServicer

    from engine.blobs import BlobStore
    from engine.deposit import DepositService
    from engine.directory_file import load_directory
    from engine.model import Limits
    from engine.services.admin import AdminService
    from engine.services.auth import TokenAuthenticator
    from engine.services.flows import FlowsService
    from engine.services.oauth import AccessTokens
    from engine.services.watch import WatchService
    from engine.store import open_store
    from gateway.grpc_server import start_grpc_server
    from gateway.http.app import build_app
    from gateway.http.auth import HttpAuth
    from gateway.http.rate import RateLimiter
    from gateway.http.server import HttpServer
    from gateway.http.services import HttpServices
    from tests.harness import DEMO_DIRECTORY

    store = await open_store(f"sqlite:///{Path(root) / 'fluxdepot.db'}")
    await store.import_directory(load_directory(DEMO_DIRECTORY))
    limits = Limits()
    flows = FlowsService(store, DepositService(store, BlobStore(Path(root) / "blobs"), limits), stuck_after_s={})
    watch = WatchService(store, wait_s=15.0)
    tokens = TokenAuthenticator(store, access_tokens=AccessTokens(secrets.token_bytes(32), ttl_s=900))
    admin = AdminService(store, tokens)
    server, grpc_port = await start_grpc_server(
        limits, "127.0.0.1:0", flows=flows, watch=watch, auth=tokens, admin=admin, health=HealthServicer()
    )
    auth = HttpAuth(tokens, RateLimiter(1e9, 10**9))
    http = HttpServer(build_app(HttpServices(flows, watch, admin, auth, limits)), grace_s=5)
    http_port = await http.start("127.0.0.1:0")
    ports_out.put((grpc_port, http_port))
    await server.wait_for_termination()


def _child(ports_out: multiprocessing.SimpleQueue, root: str) -> None:  # type: ignore[type-arg]
    from gateway.logs import configure_logging

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the daemon's JSON log lines are rendered, not shown
    configure_logging("info", "json")
    asyncio.run(_serve(ports_out, root))


# --- the loads ------------------------------------------------------------------------------------------


async def _drive(call: Callable[[int], object], concurrency: int, seconds: float) -> Result:
    counter = iter(range(10**9))
    latencies: list[float] = []

    async def one() -> None:
        i = next(counter)
        start = time.perf_counter()
        await call(i)  # type: ignore[misc]
        latencies.append((time.perf_counter() - start) * 1000)

    for _ in range(max(WARM_UP_CALLS, concurrency)):
        await one()
    latencies.clear()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(concurrency, len(latencies), time.perf_counter() - start, latencies)


async def grpc_load(port: int, concurrency: int, seconds: float, payloads: list[bytes]) -> Result:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)])
    stub = pb_grpc.FlowServiceStub(channel)
    md = (("authorization", f"Bearer {TOKEN}"),)

    async def call(i: int) -> None:
        content = payloads[i % len(payloads)] + str(i).encode()
        request = pb.DepositRequest(file_name=f"g{i}.xml", content=content, syntax="IN_DP_E1_UBL_INVOICE")
        await stub.Deposit(request, metadata=md, timeout=30)

    try:
        return await _drive(call, concurrency, seconds)
    finally:
        await channel.close()


async def http_load(port: int, concurrency: int, seconds: float, payloads: list[bytes]) -> Result:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    info = json.dumps({"flowSyntax": "UBL"})
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits, timeout=30
    ) as http:

        async def call(i: int) -> None:
            content = payloads[i % len(payloads)] + str(i).encode()
            files = {"flowInfo": (None, info, "application/json"), "file": (f"h{i}.xml", content, "application/xml")}
            response = await http.post("/v1/flows", files=files)
            if response.status_code != 202:
                raise RuntimeError(f"POST /v1/flows: {response.status_code} {response.text}")

        return await _drive(call, concurrency, seconds)


def deposits(args: argparse.Namespace) -> list[str]:
    """The deposits/s rows: gRPC then HTTP, ``--rounds`` times, and the median ratio."""
    payloads = [_invoice(i) for i in range(64)]
    ctx = multiprocessing.get_context("spawn")
    lines = [
        f"Deposits of ~{INVOICE_BYTES // 1024} KB invoices at concurrency {args.concurrency},"
        f" {args.rounds} rounds of {args.seconds:.0f} s (one server process, both faces, durable SQLite)",
        f"{'round':>6} {'gRPC/s':>8} {'p99 ms':>7} {'HTTP/s':>8} {'p99 ms':>7} {'ratio':>6}",
    ]
    ratios = []
    with tempfile.TemporaryDirectory() as root:
        queue = ctx.SimpleQueue()
        proc = ctx.Process(target=_child, args=(queue, root), daemon=True)
        proc.start()
        try:
            grpc_port, http_port = queue.get()
            for n in range(1, args.rounds + 1):
                g = asyncio.run(grpc_load(grpc_port, args.concurrency, args.seconds, payloads))
                h = asyncio.run(http_load(http_port, args.concurrency, args.seconds, payloads))
                ratios.append(h.rate / g.rate)
                lines.append(
                    f"{n:>6} {g.rate:>8.0f} {g.pct(0.99):>7.1f} {h.rate:>8.0f} {h.pct(0.99):>7.1f} {ratios[-1]:>6.2f}"
                )
        finally:
            proc.terminate()
            proc.join(10)
    median = statistics.median(ratios)
    verdict = "met" if median >= TARGET_RATIO else "NOT met"
    lines.append(f"target: HTTP >= {TARGET_RATIO}x gRPC (median ratio {median:.2f}): {verdict}")
    return lines


# --- search ---------------------------------------------------------------------------------------------


async def _search_rows(path: Path, runs: int) -> list[str]:
    from engine.permissions import Visibility
    from engine.queries import FlowQuery
    from engine.store.sqlite import SqliteStore
    from gateway.http.afnor_convert import SearchFilters, flow_query, search_content

    store = SqliteStore(str(path))
    await store.open()
    rows = []
    try:
        followed = random.Random(11).sample(search_bench.ISSUERS, 5)
        since = search_bench.START.isoformat()
        afnor = flow_query(SearchFilters(updated_after=search_bench.START))
        assert afnor is not None
        for who, vis in (
            ("user (5 issuers)", Visibility(sirets=frozenset(followed))),
            ("operator", Visibility(everything=True)),
        ):

            async def first_afnor(vis: Visibility = vis) -> None:
                flows = await store.search_changed(afnor, vis, limit=PAGE + 1)
                search_content(PAGE, {"updatedAfter": since}, flows[:PAGE])  # the route's rendering too

            async def first_grpc(vis: Visibility = vis) -> None:
                await store.search(FlowQuery(), vis, page_size=PAGE)

            for name, fn in (("AFNOR updatedAfter", first_afnor), ("gRPC Search", first_grpc)):
                await fn()
                samples = await search_bench.timed_async(fn, runs)
                p50, p99 = search_bench.pct(samples, 0.5), search_bench.pct(samples, 0.99)
                verdict = "met" if p99 <= TARGET_SEARCH_P99_MS else "NOT met"
                rows.append(f"{who:<18} {name:<19} {p50:>8.2f} {p99:>8.2f}  {verdict}")
    finally:
        await store.close()
    return rows


def search(args: argparse.Namespace) -> list[str]:
    """First-page latency of both searches on ``bench.search``'s store of ``--flows`` flows."""
    path = search_bench.OUT / f"search-v2-{args.flows}.db"
    lines = []
    if not path.exists():
        started = time.perf_counter()
        search_bench.build(path, args.flows)
        lines.append(f"built {path} with {args.flows} flows in {time.perf_counter() - started:.0f} s")
    lines.append(f"First page of {PAGE} on {args.flows:,} flows, {args.runs} runs (store call + AFNOR rendering)")
    lines.append(f"{'who':<18} {'search':<19} {'p50 ms':>8} {'p99 ms':>8}  target p99 <= {TARGET_SEARCH_P99_MS} ms")
    return lines + asyncio.run(_search_rows(path, args.runs))


# --- the hook for other rows ----------------------------------------------------------------------------


def webhooks(args: argparse.Namespace) -> list[str]:
    """Webhook deliveries/s, measured by ``bench.http_webhooks`` when it offers ``row(args) -> str``."""
    from bench import http_webhooks

    row = getattr(http_webhooks, "row", None)
    if row is None:
        return ["webhook deliveries/s: see python -m bench.http_webhooks (it offers no row() for this table)"]
    return [str(row(args))]


ROWS: dict[str, Callable[[argparse.Namespace], list[str]]] = {
    "deposits": deposits,
    "search": search,
    "webhooks": webhooks,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(ROWS), default=list(ROWS))
    parser.add_argument("--flows", type=int, default=1_000_000, help="flows in the search store (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=200, help="searches per measure (default 200)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each deposit load (default 3)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name in args.only:
        print("\n".join(ROWS[name](args)))
        print()


if __name__ == "__main__":
    main()
