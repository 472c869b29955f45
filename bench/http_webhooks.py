"""Webhook deliveries per second to a local receiver, next to a plain httpx loop in the same run.

A fresh SQLite store gets one subscription and ``--deliveries`` deposits (each queues one delivery, written
by the store's trigger in the deposit's transaction). Then, against the same loopback receiver
(``tests.webhook_receiver``, in this process): first the baseline, a bare ``httpx.AsyncClient`` POSTing
bodies of the same size with ``--concurrency`` tasks (what HTTP alone costs here); then the real runner
(``gateway.webhooks.WebhookRunner``: claim under lease, render, sign, POST, record the outcome) at the same
concurrency, timed from its start until the receiver has every delivery. Each is run ``--rounds`` times.

    .venv/bin/python -m bench.http_webhooks [--deliveries 2000] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from engine.model import Channel, Syntax
from engine.status import FlowStatus
from engine.store.port import NewFlow
from engine.store.sqlite import SqliteStore
from engine.webhooks import Backoff, Delivery, NewSubscription, OwnerKind, WebhookFormat, fluxdepot_body
from gateway.webhooks import WebhookRunner
from tests.webhook_receiver import Receiver

SUPPLIER = "40483304800022"
BODY = b'{"delivery_id":1,"flow_number":"CPP0012026000000000000001","issuer_siret":"40483304800022",' * 2


async def _render(delivery: Delivery) -> dict[str, Any]:
    return fluxdepot_body(delivery)


async def queue(store: SqliteStore, url: str, n: int) -> None:
    """One subscription (RECEIVED only) and ``n`` deposits: ``n`` deliveries."""
    now = datetime.now(UTC)
    await store.add_webhook(
        NewSubscription(SUPPLIER, OwnerKind.STRUCTURE, SUPPLIER, url, "bench-secret", (FlowStatus.RECEIVED,),
                        WebhookFormat.FLUXDEPOT, now, "bench")
    )  # fmt: skip

    async def deposit(i: int) -> None:
        await store.create_flow(
            NewFlow("CPP001", f"{i}.xml", Syntax.UBL_INVOICE, True, Channel.API, SUPPLIER, "tech:bench",
                    f"{i:064x}", 4, "", now, content=b"<x/>")
        )  # fmt: skip

    for start in range(0, n, 200):
        await asyncio.gather(*(deposit(i) for i in range(start, min(n, start + 200))))


async def baseline(receiver: Receiver, n: int, concurrency: int) -> float:
    """Plain POSTs per second."""
    before = len(receiver.requests)
    todo = iter(range(n))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            for _ in todo:
                r = await client.post(receiver.url, content=BODY, headers={"Content-Type": "application/json"})
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    assert len(receiver.requests) - before == n
    return n / elapsed


async def deliveries(store: SqliteStore, receiver: Receiver, n: int, concurrency: int) -> float:
    """Runner deliveries per second (every delivery of the store, from the runner's start)."""
    backoff = Backoff(first_retry_s=1, max_retry_s=10, retry_for_s=600)
    runner = WebhookRunner(
        store, {WebhookFormat.FLUXDEPOT: _render}, backoff, timeout_s=10, concurrency=concurrency,
        per_subscription=concurrency, poll_s=0.5,
    )  # fmt: skip
    before = len(receiver.requests)
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    for _ in range(10_000_000):  # polled: the runner has no event for "n delivered"
        if runner.delivered >= n:
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    runner.stop(5)
    await task
    assert len(receiver.requests) - before >= n
    return n / elapsed


async def measure(deliveries_n: int, concurrency: int, rounds: int) -> list[tuple[float, float]]:
    """Per round: (plain httpx POSTs/s, runner deliveries/s) to one loopback receiver."""
    # The runner's one info line per delivery is not what is measured (the daemon writes it as JSON).
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    receiver = await Receiver().start()
    results = []
    try:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                store = SqliteStore(str(Path(tmp) / "bench.db"))
                await store.open()
                try:
                    await queue(store, receiver.url, deliveries_n)
                    plain = await baseline(receiver, deliveries_n, concurrency)
                    hooks = await deliveries(store, receiver, deliveries_n, concurrency)
                finally:
                    await store.close()
            results.append((plain, hooks))
    finally:
        await receiver.stop()
    return results


def rows(deliveries_n: int, concurrency: int, rounds: int) -> list[str]:
    """The table ``bench.http_webhooks`` prints (``bench.http`` prints it too)."""
    lines = [
        f"Webhook deliveries to a loopback receiver, {deliveries_n} per round, concurrency {concurrency}",
        " round  httpx POST/s  runner deliveries/s  ratio",
    ]
    for rnd, (plain, hooks) in enumerate(asyncio.run(measure(deliveries_n, concurrency, rounds)), 1):
        lines.append(f"{rnd:>6}  {plain:>12.0f}  {hooks:>19.0f}  {hooks / plain:>5.2f}")
    return lines


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(rows(args.deliveries, args.concurrency, args.rounds)))


if __name__ == "__main__":
    cli()
