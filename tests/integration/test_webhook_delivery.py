"""Webhook deliveries end to end in one process: a real SQLite store, the real runner
(``gateway.webhooks.WebhookRunner``) and its httpx client, and a real HTTP receiver on loopback
(``tests.webhook_receiver``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.model import Channel, Syntax
from engine.status import FlowEvent, FlowStatus
from engine.store.port import NewFlow
from engine.store.sqlite import SqliteStore
from engine.webhooks import (
    Backoff,
    Delivery,
    DeliveryState,
    NewSubscription,
    OwnerKind,
    WebhookFormat,
    fluxdepot_body,
    verify,
)
from gateway.webhooks import WebhookRunner
from tests.webhook_receiver import Receiver

S = FlowStatus
E = FlowEvent
SUPPLIER = "40483304800022"
SECRET = "receiver-secret"
FAST = Backoff(first_retry_s=0.05, max_retry_s=0.2, retry_for_s=60)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()


async def _fluxdepot(delivery: Delivery) -> dict[str, Any]:
    return fluxdepot_body(delivery)


async def _afnor(delivery: Delivery) -> dict[str, Any]:
    return {"flowInfo": {"flowId": delivery.flow_number, "status": delivery.status.code}}


RENDER = {WebhookFormat.FLUXDEPOT: _fluxdepot, WebhookFormat.AFNOR: _afnor}


class Running:
    """A runner started in a task, stopped at the end of the ``async with``."""

    def __init__(self, store: SqliteStore, backoff: Backoff = FAST, **kw: Any) -> None:
        options: dict[str, Any] = {"timeout_s": 5.0, "concurrency": 8, "poll_s": 0.05} | kw
        self.runner = WebhookRunner(store, RENDER, backoff, **options)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebhookRunner:
        self._task = asyncio.create_task(self.runner.run())
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        self.runner.stop(1.0)
        assert self._task is not None
        await self._task


async def subscribe(
    store: SqliteStore, url: str, *, statuses: tuple[FlowStatus, ...] = (), fmt: WebhookFormat = WebhookFormat.FLUXDEPOT
) -> int:
    new = NewSubscription(
        siret=SUPPLIER,
        owner_kind=OwnerKind.STRUCTURE,
        owner=SUPPLIER,
        url=url,
        secret=SECRET,
        statuses=statuses,
        format=fmt,
        created_at=datetime.now(UTC),
        created_by="user:manager",
    )
    return (await store.add_webhook(new)).id


async def deposit(store: SqliteStore, i: int) -> str:
    new = NewFlow(
        number_prefix="CPP001",
        file_name=f"f{i}.xml",
        syntax=Syntax.UBL_INVOICE,
        declared_syntax=True,
        channel=Channel.API,
        issuer_siret=SUPPLIER,
        depositor="tech:TECH_1",
        sha256=f"{i:064x}",
        size_bytes=10,
        blob_key="",
        deposited_at=datetime.now(UTC),
        content=b"<x/>",
    )
    return (await store.create_flow(new)).flow_number


async def advance(store: SqliteStore, number: str) -> None:
    """RECEIVED → PROCESSED_SE_CPP → WAITING_FOR_PROCESSING."""
    await store.transition(number, S.RECEIVED, [E.TRANSPORT_CHECKED, E.QUEUED], actor="w", at=datetime.now(UTC))


async def eventually(check: Callable[[], Any], timeout_s: float = 20.0) -> None:
    """Until ``check()`` is true (polled: what it reads has no event to wait on)."""
    deadline = time.monotonic() + timeout_s
    for _ in range(1_000_000):
        if await check():
            return
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_signed_bodies_in_order_per_flow(store: SqliteStore, receiver: Receiver) -> None:
    """Every status change is POSTed once with our body, an HMAC signature the receiver verifies with the
    secret, a delivery id and the event name; each flow's changes arrive in their order."""
    await subscribe(store, receiver.url)
    numbers = [await deposit(store, i) for i in range(3)]
    for number in numbers:
        await advance(store, number)
    async with Running(store):
        got = await receiver.wait_for(9)
    for r in got:
        assert verify(SECRET, r.body, r.headers["x-fluxdepot-signature"], now=int(time.time()))
        assert not verify("wrong", r.body, r.headers["x-fluxdepot-signature"], now=int(time.time()))
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-fluxdepot-event"] == "flow.status_changed"
        assert int(r.headers["x-fluxdepot-delivery"]) == r.json()["delivery_id"]
    for number in numbers:
        bodies = [r.json() for r in got if r.json()["flow_number"] == number]
        assert [b["status_code"] for b in bodies] == ["IN_RECU", "IN_TRAITE_SE_CPP", "IN_EN_ATTENTE_TRAITEMENT_CPP"]
        assert [b["previous_status"] for b in bodies] == [None, "RECEIVED", "PROCESSED_SE_CPP"]
        assert bodies[0]["issuer_siret"] == SUPPLIER and bodies[0]["label_fr"]
        assert bodies[0]["at"].endswith("Z") and len(bodies[0]["at"]) == len("2026-01-05T09:00:00.123Z")
        assert bodies[0]["cursor"] < bodies[1]["cursor"] < bodies[2]["cursor"]
    assert len({r.headers["x-fluxdepot-delivery"] for r in got}) == 9


async def test_status_filter_and_afnor_format(store: SqliteStore, receiver: Receiver) -> None:
    """A subscription gets only the statuses it names, in the body of its format (AFNOR's flowInfo)."""
    await subscribe(store, receiver.url, statuses=(S.WAITING_FOR_PROCESSING,), fmt=WebhookFormat.AFNOR)
    number = await deposit(store, 1)
    await advance(store, number)
    async with Running(store):
        (got,) = await receiver.wait_for(1)
        await asyncio.sleep(0.3)
    assert got.json() == {"flowInfo": {"flowId": number, "status": "IN_EN_ATTENTE_TRAITEMENT_CPP"}}
    assert len(receiver.requests) == 1


async def test_receiver_down_then_up(store: SqliteStore, receiver: Receiver) -> None:
    """While the receiver is down, deliveries are retried (connection refused is recorded); once it is up
    again every change arrives, in order."""
    sub = await subscribe(store, receiver.url)
    await receiver.stop()
    number = await deposit(store, 1)
    await advance(store, number)
    async with Running(store):

        async def failed_twice() -> bool:
            return any(d.attempts >= 2 for d in await store.list_deliveries([sub]))

        await eventually(failed_twice)
        (first,) = [d for d in await store.list_deliveries([sub]) if d.status is S.RECEIVED]
        assert first.last_error and "ConnectError" in first.last_error
        await receiver.start()
        got = await receiver.wait_for(3)
    assert [r.json()["status"] for r in got] == ["RECEIVED", "PROCESSED_SE_CPP", "WAITING_FOR_PROCESSING"]


async def test_500_goes_dead_then_redelivered(store: SqliteStore, receiver: Receiver) -> None:
    """A receiver answering 500 gets retries until retry_for_s, then the delivery is dead (and the next
    change of the flow goes on); redelivered, it is sent again and delivered. Each attempt's outcome is
    reported (the daemon counts them in fluxdepot_webhook_attempts_total)."""
    receiver.status = 500
    sub = await subscribe(store, receiver.url, statuses=(S.RECEIVED,))
    await deposit(store, 1)
    short = Backoff(first_retry_s=0.05, max_retry_s=0.1, retry_for_s=0.5)
    outcomes: list[str] = []
    async with Running(store, backoff=short, on_outcome=outcomes.append):

        async def dead() -> bool:
            return bool(await store.list_deliveries([sub], state=DeliveryState.DEAD))

        await eventually(dead)
        (d,) = await store.list_deliveries([sub], state=DeliveryState.DEAD)
        assert d.attempts >= 2 and d.last_error == "HTTP 500"
        assert len(receiver.requests) == d.attempts
        receiver.status = 204
        assert await store.redeliver(d.id, now=datetime.now(UTC))
        (got,) = await receiver.wait_for(1)
    assert got.headers["x-fluxdepot-delivery"] == str(d.id)
    (done,) = await store.list_deliveries([sub])
    assert done.state is DeliveryState.DELIVERED
    assert outcomes == ["retry"] * (d.attempts - 1) + ["dead", "delivered"]


async def test_slow_receiver_does_not_hold_up_others(store: SqliteStore, receiver: Receiver) -> None:
    """A receiver that takes seconds to answer holds at most its share of the slots: another
    subscription's deliveries go through meanwhile, and deposits are not slowed."""
    slow = await Receiver(delay_s=3.0).start()
    try:
        await subscribe(store, slow.url)
        await subscribe(store, receiver.url)
        async with Running(store, concurrency=4, per_subscription=1):
            started = time.monotonic()
            for i in range(4):
                await deposit(store, i)
            deposits_s = time.monotonic() - started
            await receiver.wait_for(4, timeout_s=2.5)
            assert len(slow.requests) == 0  # still answering the first
        assert deposits_s < 1.0
    finally:
        await slow.stop()


async def test_nothing_sent_after_removal(store: SqliteStore, receiver: Receiver) -> None:
    """Once a subscription is deleted, nothing more is POSTed to it: neither its retries nor later changes."""
    receiver.status = 503
    sub = await subscribe(store, receiver.url)
    number = await deposit(store, 1)
    async with Running(store):
        await eventually(lambda: asyncio.sleep(0, len(receiver.requests) >= 2))
        assert await store.delete_webhook(sub)
        await asyncio.sleep(0.2)  # a POST in flight at the removal ends
        seen = len(receiver.requests)
        await advance(store, number)
        await asyncio.sleep(1.0)
    assert len(receiver.requests) == seen
