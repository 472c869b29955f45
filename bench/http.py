"""The HTTP faces against gRPC: AFNOR ``POST /v1/flows`` deposits/s beside gRPC ``Deposit`` in the same run,
and the AFNOR search's first page (``updatedAfter`` order) on a big store beside the gRPC search's.

Deposits: one server process serving both faces on one fresh SQLite store, as the daemon does (durable
deposits, the demo directory, the demo technical token); the load (this process) runs in turn gRPC
``Deposit``, AFNOR ``POST /v1/flows`` and the JSON API's ``POST /api/v1/flows`` for ``--seconds`` at
``--concurrency``, ``--rounds`` rounds, each deposit a distinct ~20 KB UBL invoice (gRPC: the generated
stub on grpc's C-core; HTTP: ``bench.http_load``, keep-alive connections and pre-encoded multipart requests,
about as cheap per call as the gRPC client, which httpx, pure Python, is not). Each
load's line has calls/s, p99, and the CPU per call of the server (its process and children, from /proc:
the figure no client can distort) and of this process. Baselines in a second server process, no deposit:
a grpc.aio echo, uvicorn + httptools answering 202 from a raw ASGI app, and a bare Starlette route that
parses the same multipart. Target: HTTP >= 0.8x gRPC deposits/s at concurrency 16 (median of the rounds).

Search: ``bench.search``'s store of ``--flows`` flows over 1,000 issuers (built once under ``bench/out``),
a user following 5 issuers and an operator; p50/p99 of the store call each face makes for its first
page: ``search_changed`` (AFNOR, 100 flows, oldest change first) and ``search`` (gRPC, 100 flows). Target:
p99 <= 10 ms.

    .venv/bin/python -m bench.http [--only deposits search webhooks] [--flows 1000000] [--seconds 3] [--no-baselines]

``--only webhooks`` (and the default run) adds the webhook deliveries/s of ``bench.http_webhooks`` (2,000
deliveries, concurrency 8) beside a plain httpx loop to the same receiver.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench import search as search_bench
from bench.cpu import cpu_seconds
from bench.deposit import INVOICE_BYTES, TOKEN, _invoice
from bench.http_load import Encoder, Load, afnor_encoder, api_encoder
from bench.http_load import drive as http_drive
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


# --- baselines: the frameworks alone, no deposit ----------------------------------------------------------

ACK = json.dumps({"flowId": "CPP0011100000000000000001", "ackStatus": "Pending"}).encode()


async def _raw_asgi(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
    """uvicorn + httptools alone: the whole body read, a canned 202, no multipart parsing."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ACK)).encode())]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": ACK})


def _starlette_form_app() -> Any:
    """A bare Starlette route that parses the same multipart as ``POST /v1/flows`` (``flowInfo`` JSON and
    ``file`` read whole) and answers a canned 202: HTTP/1.1 + multipart in Python, without fluxdepot."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def flows(request: Request) -> Response:
        async with request.form(max_files=2, max_fields=4) as form:
            info, upload = form["flowInfo"], form["file"]
            json.loads(info if isinstance(info, str) else await info.read())
            await upload.read()  # type: ignore[union-attr]
        return Response(ACK, 202, media_type="application/json")

    return Starlette(routes=[Route("/v1/flows", flows, methods=["POST"])])


async def _serve_baselines(ports_out: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    from bench.deposit import start_echo_server
    from gateway.http.server import HttpServer

    server, grpc_port = await start_echo_server()
    raw_port = await HttpServer(_raw_asgi, grace_s=1).start("127.0.0.1:0")
    form_port = await HttpServer(_starlette_form_app(), grace_s=1).start("127.0.0.1:0")
    ports_out.put((grpc_port, raw_port, form_port))
    await server.wait_for_termination()


def _baselines_child(ports_out: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    asyncio.run(_serve_baselines(ports_out))


# --- the loads ------------------------------------------------------------------------------------------


async def grpc_load(port: int, concurrency: int, seconds: float, content: Callable[[int], bytes], pid: int) -> Load:
    """``concurrency`` concurrent ``Deposit`` calls on one channel (grpc's C-core client) for ``seconds``."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)])
    stub = pb_grpc.FlowServiceStub(channel)
    md = (("authorization", f"Bearer {TOKEN}"),)
    counter = iter(range(10**9))
    latencies: list[float] = []

    async def one() -> None:
        i = next(counter)
        request = pb.DepositRequest(file_name=f"g{i}.xml", content=content(i), syntax="IN_DP_E1_UBL_INVOICE")
        start = time.perf_counter()
        await stub.Deposit(request, metadata=md, timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)

    try:
        for _ in range(max(WARM_UP_CALLS, concurrency)):
            await one()
        latencies.clear()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one()

        server, client, start = cpu_seconds(pid), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        return Load(len(latencies), elapsed, latencies, cpu_seconds(pid) - server, time.process_time() - client)
    finally:
        await channel.close()


def http_load(
    port: int, encoder: Encoder, concurrency: int, seconds: float, content: Callable[[int], bytes], pid: int
) -> Load:
    return asyncio.run(
        http_drive(port, encoder, content, concurrency, seconds, meter=lambda: cpu_seconds(pid), warm_up=WARM_UP_CALLS)
    )


@dataclass
class Face:
    """One kind of load and its rounds."""

    name: str
    run: Callable[[], Load]
    loads: list[Load] = field(default_factory=list)

    def row(self, label: str, load: Load) -> str:
        rate = load.calls / load.seconds
        p99 = sorted(load.latencies_ms)[min(len(load.latencies_ms) - 1, int(0.99 * len(load.latencies_ms)))]
        server, client = load.server_cpu_s / load.calls * 1000, load.client_cpu_s / load.calls * 1000
        return f"{label:>6} {self.name:<28} {rate:>8.0f} {p99:>7.1f} {server:>10.2f} {client:>10.2f}"


def _rate(load: Load) -> float:
    return load.calls / load.seconds


def _cpu(load: Load) -> float:
    return load.server_cpu_s / load.calls


def deposits(args: argparse.Namespace) -> list[str]:
    """Deposits/s and server CPU per call of gRPC, AFNOR and the JSON API (and the frameworks' baselines),
    ``--rounds`` rounds in turn, with the median ratios to gRPC."""
    payloads = [_invoice(i) for i in range(64)]
    stamp = f"{time.time_ns()}-".encode()  # distinct bytes per deposit, across runs too

    def content(i: int) -> bytes:
        return payloads[i % len(payloads)] + stamp + str(i).encode()

    ctx = multiprocessing.get_context("spawn")
    lines = [
        f"Deposits of ~{INVOICE_BYTES // 1024} KB invoices at concurrency {args.concurrency}, {args.rounds} rounds"
        f" of {args.seconds:.0f} s (one server process, both faces, durable SQLite; HTTP: {args.concurrency}"
        " keep-alive connections, bench.http_load)",
        f"{'round':>6} {'load':<28} {'calls/s':>8} {'p99 ms':>7} {'server CPU':>10} {'client CPU':>10}  (ms/call)",
    ]
    with tempfile.TemporaryDirectory() as root:
        queue, base_queue = ctx.SimpleQueue(), ctx.SimpleQueue()
        proc = ctx.Process(target=_child, args=(queue, root), daemon=True)
        base = ctx.Process(target=_baselines_child, args=(base_queue,), daemon=True)
        proc.start()
        base.start()
        try:
            grpc_port, http_port = queue.get()
            echo_port, raw_port, form_port = base_queue.get()
            c, s, pid, bpid = args.concurrency, args.seconds, proc.pid, base.pid
            assert pid is not None and bpid is not None
            real = [
                Face("gRPC Deposit", lambda: asyncio.run(grpc_load(grpc_port, c, s, content, pid))),
                Face(
                    "AFNOR POST /v1/flows",
                    lambda: http_load(http_port, afnor_encoder(http_port, TOKEN), c, s, content, pid),
                ),
                Face(
                    "API POST /api/v1/flows",
                    lambda: http_load(http_port, api_encoder(http_port, TOKEN), c, s, content, pid),
                ),
            ]
            baselines = [
                Face("gRPC echo (no deposit)", lambda: asyncio.run(grpc_load(echo_port, c, s, content, bpid))),
                Face(
                    "uvicorn raw ASGI 202",
                    lambda: http_load(raw_port, afnor_encoder(raw_port, TOKEN), c, s, content, bpid),
                ),
                Face(
                    "Starlette multipart 202",
                    lambda: http_load(form_port, afnor_encoder(form_port, TOKEN), c, s, content, bpid),
                ),
            ]
            faces = real + (baselines if args.baselines else [])
            for n in range(1, args.rounds + 1):
                for face in faces:
                    face.loads.append(face.run())
                    lines.append(face.row(str(n), face.loads[-1]))
        finally:
            for p in (proc, base):
                p.terminate()
                p.join(10)
    for face in faces:
        pooled = Load(
            sum(x.calls for x in face.loads),
            sum(x.seconds for x in face.loads),
            [ms for x in face.loads for ms in x.latencies_ms],
            sum(x.server_cpu_s for x in face.loads),
            sum(x.client_cpu_s for x in face.loads),
        )
        lines.append(face.row("all", pooled))
    grpc_face = real[0]
    for face in real[1:]:
        rate = statistics.median(_rate(h) / _rate(g) for h, g in zip(face.loads, grpc_face.loads, strict=True))
        cpu = statistics.median(_cpu(h) / _cpu(g) for h, g in zip(face.loads, grpc_face.loads, strict=True))
        verdict = "met" if rate >= TARGET_RATIO else "NOT met"
        lines.append(
            f"{face.name}: median ratio to gRPC {rate:.2f}x deposits/s, {cpu:.2f}x server CPU per call;"
            f" target >= {TARGET_RATIO}x: {verdict}"
        )
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


# --- webhooks -------------------------------------------------------------------------------------------------


def webhooks(args: argparse.Namespace) -> list[str]:
    """Webhook deliveries/s beside a plain httpx loop to the same receiver (``bench.http_webhooks``)."""
    from bench import http_webhooks

    return http_webhooks.rows(2000, 8, args.rounds)


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
    parser.add_argument("--no-baselines", dest="baselines", action="store_false", help="skip the frameworks' baselines")
    args = parser.parse_args()
    for name in args.only:
        print("\n".join(ROWS[name](args)))
        print()


if __name__ == "__main__":
    main()
