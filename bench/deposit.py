"""``Deposit`` calls per second over gRPC, next to a bare grpc.aio echo server in the same run.

Each server runs in its own process (the load generator in this one): first a bare echo server that
answers ``FlowService/Deposit`` with a canned ``DepositResponse`` (the framework's own limit), then the
real server (``gateway.grpc_server.start_grpc_server``) on a fresh SQLite store with durable deposits
(a 20 KB deposit's bytes committed with its row, ``synchronous=FULL``) and a real bearer token. Every
deposit carries a distinct ~20 KB UBL invoice. For each concurrency: calls/s, p50 and p99 latency, the
ratio to echo, and each server's CPU time per call with its child processes' (the deposits' writer),
read from /proc: where the time goes.

Both servers stay up, and each point is measured ``--rounds`` times as a pair of loads (echo, then
deposit) back to back: on a shared machine the rate of either can change by a third from one minute
to the next, and a pair sees the same neighbours. Each round's line has its own ratio; the ``all``
line pools the rounds' calls and latencies and gives the median of the rounds' ratios, which the
target is checked against.

    .venv/bin/python -m bench.deposit [--seconds 3] [--concurrency 1 16 64] [--rounds 3]

Targets (issue 4): at concurrency 16, >= 50% of the echo rate and p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from bench.cpu import cpu_seconds
from fluxdepot.v1 import flows_pb2 as pb
from fluxdepot.v1 import flows_pb2_grpc as pb_grpc

TOKEN = "demo-technical-token"  # noqa: S105 - the public demo token
INVOICE_BYTES = 20 * 1024
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
WARM_UP_CALLS = 20


def _invoice(i: int) -> bytes:
    from tests.factory import DEMO_BUYER_SERVICE, DEMO_SUPPLIER, InvoiceSpec, ubl_invoice

    base = ubl_invoice(InvoiceSpec(f"FA-B-{i}", DEMO_SUPPLIER, DEMO_BUYER_SERVICE, service_code="SERV-COMPTA"))
    return base + b"<!--" + b"x" * max(0, INVOICE_BYTES - len(base) - 7) + b"-->"


# --- servers (child processes) ------------------------------------------------------------------------


async def _echo(request: pb.DepositRequest, context: grpc.aio.ServicerContext) -> pb.DepositResponse:
    return pb.DepositResponse(flow_number="CPP0011100000000000000001", syntax=request.syntax)


async def start_echo_server() -> tuple[grpc.aio.Server, int]:
    """The baseline: a bare grpc.aio server answering ``Deposit`` at once (also ``bench.http``'s)."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 31 * 1024 * 1024)])
    handler = grpc.unary_unary_rpc_method_handler(
        _echo,
        request_deserializer=pb.DepositRequest.FromString,
        response_serializer=pb.DepositResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("fluxdepot.v1.FlowService", {"Deposit": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _serve_echo(port_out: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    server, port = await start_echo_server()
    port_out.put(port)
    await server.wait_for_termination()


async def _serve_real(port_out: multiprocessing.SimpleQueue, root: str) -> None:  # type: ignore[type-arg]
    from grpc_health.v1._async import HealthServicer

    from engine.blobs import BlobStore
    from engine.deposit import DepositService
    from engine.directory_file import load_directory
    from engine.model import Limits
    from engine.services.admin import AdminService
    from engine.services.auth import TokenAuthenticator
    from engine.services.flows import FlowsService
    from engine.services.watch import WatchService
    from engine.store import open_store
    from gateway.grpc_server import start_grpc_server
    from tests.harness import DEMO_DIRECTORY

    store = await open_store(f"sqlite:///{Path(root) / 'fluxdepot.db'}")
    await store.import_directory(load_directory(DEMO_DIRECTORY))
    limits = Limits()
    deposits = DepositService(store, BlobStore(Path(root) / "blobs"), limits)
    server, port = await start_grpc_server(
        limits,
        "127.0.0.1:0",
        flows=FlowsService(store, deposits, stuck_after_s={}),
        watch=WatchService(store, wait_s=15.0),
        auth=(auth := TokenAuthenticator(store)),
        admin=AdminService(store, auth),
        health=HealthServicer(),
    )
    port_out.put(port)
    await server.wait_for_termination()


def _child(kind: str, port_out: multiprocessing.SimpleQueue, root: str) -> None:  # type: ignore[type-arg]
    asyncio.run(_serve_echo(port_out) if kind == "echo" else _serve_real(port_out, root))


# --- load ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    concurrency: int
    calls: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_ms: float = float("nan")  # the server's CPU per call, children included (/proc), warm-up included

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(port: int, concurrency: int, seconds: float, payloads: list[bytes]) -> Result:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)])
    stub = pb_grpc.FlowServiceStub(channel)
    md = (("authorization", f"Bearer {TOKEN}"),)
    counter = iter(range(10**9))
    latencies: list[float] = []

    async def call() -> None:
        i = next(counter)
        request = pb.DepositRequest(
            file_name=f"b{i}.xml",
            content=payloads[i % len(payloads)] + str(i).encode(),
            syntax="IN_DP_E1_UBL_INVOICE",
        )
        start = time.perf_counter()
        await stub.Deposit(request, metadata=md, timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)

    for _ in range(max(WARM_UP_CALLS, concurrency)):  # warm up: connection, token cache, first pages
        await call()
    latencies.clear()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await channel.close()
    return Result(concurrency, len(latencies), elapsed, latencies)


def _measure(pid: int, port: int, concurrency: int, seconds: float, payloads: list[bytes]) -> Result:
    """One load on a running server, with the server's CPU per call (its children included)."""
    before = cpu_seconds(pid)
    result = asyncio.run(_load(port, concurrency, seconds, payloads))
    spent = cpu_seconds(pid) - before
    calls = result.calls + max(WARM_UP_CALLS, concurrency)
    return replace(result, server_cpu_ms=spent * 1000 / calls)


def _run(
    concurrencies: list[int], rounds: int, seconds: float, payloads: list[bytes]
) -> dict[int, list[tuple[Result, Result]]]:
    """Both servers up at once; for each concurrency, ``rounds`` pairs of loads (echo, then deposit)
    one after the other, so that a noisy neighbour weighs on both sides of a pair alike."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as root:
        procs, ports = {}, {}
        try:
            for kind in ("echo", "real"):
                queue = ctx.SimpleQueue()
                procs[kind] = ctx.Process(target=_child, args=(kind, queue, root), daemon=True)
                procs[kind].start()
                ports[kind] = queue.get()
            return {
                c: [
                    (
                        _measure(procs["echo"].pid, ports["echo"], c, seconds, payloads),  # type: ignore[arg-type]
                        _measure(procs["real"].pid, ports["real"], c, seconds, payloads),  # type: ignore[arg-type]
                    )
                    for _ in range(rounds)
                ]
                for c in concurrencies
            }
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.join(10)


def _pooled(results: list[Result]) -> Result:
    """The rounds' loads as one: every call's latency, the calls over the seconds of all rounds."""
    return Result(
        results[0].concurrency,
        sum(r.calls for r in results),
        sum(r.seconds for r in results),
        [ms for r in results for ms in r.latencies_ms],
        statistics.median(r.server_cpu_ms for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each load (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=3, help="echo/deposit pairs per concurrency (default 3)")
    args = parser.parse_args()
    payloads = [_invoice(i) for i in range(64)]
    runs = _run(args.concurrency, args.rounds, args.seconds, payloads)
    print(
        f"Deposit of ~{INVOICE_BYTES // 1024} KB invoices, {args.rounds} rounds of {args.seconds:.0f} s per point"
        " (durable: fsync + FULL commit)"
    )
    print(
        f"{'conc':>5} {'round':>6} {'echo/s':>9} {'echo p50':>9} {'echo p99':>9} {'deposit/s':>10}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}  server CPU ms/call echo | deposit"
    )
    ok = True
    for c, pairs in runs.items():
        ratios = [r.rate / e.rate for e, r in pairs]
        median_ratio = statistics.median(ratios)
        rows = [(str(i), e, r, ratio) for i, ((e, r), ratio) in enumerate(zip(pairs, ratios, strict=True), start=1)]
        echo, real = _pooled([e for e, _ in pairs]), _pooled([r for _, r in pairs])
        if len(pairs) > 1:
            rows.append(("all", echo, real, median_ratio))
        for label, e, r, ratio in rows:
            cpu = f"{e.server_cpu_ms:>13.2f} | {r.server_cpu_ms:.2f}"
            print(
                f"{c:>5} {label:>6} {e.rate:>9.0f} {e.pct(0.5):>9.2f} {e.pct(0.99):>9.2f} {r.rate:>10.0f} "
                f"{r.pct(0.5):>8.2f} {r.pct(0.99):>8.2f} {ratio:>6.2f}  {cpu}"
            )
        if c == 16:
            ok = median_ratio >= TARGET_RATIO and real.pct(0.99) <= TARGET_P99_MS
            print(
                f"      target at 16: median ratio >= {TARGET_RATIO}, p99 of all rounds <= {TARGET_P99_MS} ms:"
                f" {'met' if ok else 'NOT met'} (ratios {', '.join(f'{x:.2f}' for x in ratios)})"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
