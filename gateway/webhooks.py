"""Webhook deliveries: signed POSTs of the status changes the store queued (``engine.webhooks``).

``WebhookRunner.run()`` claims due deliveries under a lease (``WebhookStore.claim_deliveries``) and sends
each in its own task, so a slow or dead receiver never holds up deposits or processing — nor, past its
share, other receivers: at most ``concurrency`` POSTs are in flight, at most ``per_subscription`` of
them to one subscription. It sleeps until the store's event feed moves (``wait_for_events``: a new
status change may have queued a delivery), a POST ends (its slot is free, and the next delivery of its
flow may go), or ``poll_s`` (retries coming due, other daemons' work).

Each POST carries the body rendered for the subscription's format (``render``, given by the composition
root), ``Content-Type: application/json``, ``X-Fluxdepot-Event``, ``X-Fluxdepot-Delivery`` (the delivery
id: receivers drop duplicates with it) and ``X-Fluxdepot-Signature`` (``engine.webhooks.sign``). Any 2xx
is delivered; anything else (another status, a redirect, a timeout, a refused connection) is retried
after ``engine.webhooks.after_failure``, then dead.

At least once: a daemon killed mid-POST leaves its lease, which expires (``lease_s``) and the delivery is
claimed again. Several daemons on one PostgreSQL store share the deliveries through the leases; the
store's claim keeps each flow's deliveries to a subscription in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from engine.clock import utcnow
from engine.errors import StoreError
from engine.model import FlowRecord
from engine.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_NAME,
    MAX_ERROR_CHARS,
    SIGNATURE_HEADER,
    Attempt,
    Backoff,
    Delivery,
    WebhookFormat,
    WebhookStore,
    after_failure,
    encode_body,
    fluxdepot_body,
    sign,
)
from gateway.http.afnor_convert import afnor_flow

log = structlog.get_logger("fluxdepot.webhooks")

Render = Callable[[Delivery], Awaitable[dict[str, Any]]]
USER_AGENT = "fluxdepot-webhooks/1"
PURGE_SINGLETON = "webhook-purge"  # one daemon of those sharing a store purges settled deliveries
PURGE_EVERY_S = 3600.0


def renderers(get_flow: Callable[[str], Awaitable[FlowRecord | None]]) -> dict[WebhookFormat, Render]:
    """The body of each format: ours (``engine.webhooks.fluxdepot_body``), and AFNOR's
    ``WebhookCallbackContent`` — the flow as the standard's ``Flow`` at the delivery's status and time."""

    async def fluxdepot(delivery: Delivery) -> dict[str, Any]:
        return fluxdepot_body(delivery)

    async def afnor(delivery: Delivery) -> dict[str, Any]:
        flow = await get_flow(delivery.flow_number)
        if flow is None:
            raise LookupError(f"flow {delivery.flow_number} is no longer held (purged)")
        at_delivery = dataclasses.replace(flow, status=delivery.status, status_changed_at=delivery.at)
        return {"flowInfo": afnor_flow(at_delivery)}

    return {WebhookFormat.FLUXDEPOT: fluxdepot, WebhookFormat.AFNOR: afnor}


class WebhookRunner:
    """Sends the store's pending deliveries (see the module docstring)."""

    def __init__(
        self,
        store: WebhookStore,
        render: Mapping[WebhookFormat, Render],
        backoff: Backoff,
        *,
        timeout_s: float,
        concurrency: int,
        per_subscription: int | None = None,
        poll_s: float = 1.0,
        lease_s: float | None = None,
        instance: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._store = store
        self._on_outcome = on_outcome  # "delivered", "retry" or "dead" per attempt (the daemon's metrics)
        self._render = render
        self._backoff = backoff
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._per_subscription = per_subscription or max(1, concurrency // 4)
        self._poll_s = poll_s
        self._lease_s = lease_s if lease_s is not None else 2 * timeout_s + 5
        self._owner = instance or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_sub: Counter[int] = Counter()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._outcomes: list[tuple[Attempt, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._grace_s = 0.0  # how long run() waits for POSTs in flight once stopped (0 when cancelled)
        self.sent = 0  # attempts made (tests and the benchmark read it)
        self.delivered = 0

    def stop(self, grace_s: float = 0.0) -> None:
        """Claim nothing more; ``run`` returns once the POSTs in flight ended, or after ``grace_s``
        (cancelled: their leases expire and they are sent again)."""
        self._grace_s = grace_s
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(
            timeout=self._timeout_s,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=self._concurrency),
        ) as client:
            try:
                while not self._stopping.is_set():
                    cursor = await self._latest_cursor()
                    # Claim for half the slots at least (a claim is a write transaction: one per POST would
                    # cost a sync each), or whenever nothing is in flight.
                    free = self._concurrency - len(self._tasks)
                    claimed = await self._claim(client) if free * 2 >= self._concurrency or not self._tasks else 0
                    if not claimed or len(self._tasks) >= self._concurrency:
                        await self._sleep(cursor)
            finally:
                await self._drain(self._grace_s)

    async def _drain(self, grace_s: float) -> None:
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _latest_cursor(self) -> int:
        try:
            return await self._store.latest_cursor()
        except StoreError:
            return -1

    async def _claim(self, client: httpx.AsyncClient) -> int:
        free = self._concurrency - len(self._tasks)
        if free <= 0:
            return 0
        busy = [sub for sub, n in self._per_sub.items() if n >= self._per_subscription]
        try:
            claimed = await self._store.claim_deliveries(
                self._owner,
                now=self._clock(),
                lease_s=self._lease_s,
                limit=free,
                per_subscription=self._per_subscription,
                busy=busy,
            )
        except StoreError:
            log.exception("webhook_claim_failed")
            return 0
        for delivery in claimed:
            self._per_sub[delivery.subscription_id] += 1
            task = asyncio.create_task(self._deliver(client, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def _sleep(self, cursor: int) -> None:
        """Until the feed passes ``cursor``, a POST ends, ``stop``, or ``poll_s``."""
        self._wake.clear()
        if self._stopping.is_set():
            return
        waits = [asyncio.create_task(self._wake.wait())]
        if cursor >= 0:
            waits.append(asyncio.create_task(self._store.wait_for_events(cursor, self._poll_s)))
        try:
            await asyncio.wait(waits, timeout=self._poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            results = await asyncio.gather(*waits, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, StoreError):
                raise result

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            error = await self._post(client, delivery)
            await self._settle(delivery, error)
        finally:
            self._per_sub[delivery.subscription_id] -= 1
            if self._per_sub[delivery.subscription_id] <= 0:
                del self._per_sub[delivery.subscription_id]

    async def _post(self, client: httpx.AsyncClient, delivery: Delivery) -> str | None:
        """One attempt; the error to record, None when delivered."""
        self.sent += 1
        try:
            body = encode_body(await self._render[delivery.format](delivery))
        except Exception as exc:  # a renderer's failure (e.g. the flow was purged) is this delivery's
            log.exception("webhook_render_failed", delivery_id=delivery.id, flow_number=delivery.flow_number)
            return f"cannot render the body: {type(exc).__name__}"
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: EVENT_NAME,
            DELIVERY_HEADER: str(delivery.id),
            SIGNATURE_HEADER: sign(delivery.secret, body, int(time.time())),
        }
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _settle(self, delivery: Delivery, error: str | None) -> None:
        now = self._clock()
        retry_at = after_failure(self._backoff, delivery, now) if error is not None else None
        fields = {"delivery_id": delivery.id, "subscription_id": delivery.subscription_id}
        if error is None:
            self.delivered += 1
            self._on_outcome("delivered")
            log.info("webhook_delivered", flow_number=delivery.flow_number, status=delivery.status.name, **fields)
        elif retry_at is None:
            self._on_outcome("dead")
            log.warning("webhook_dead", flow_number=delivery.flow_number, error=error, **fields)
        else:
            self._on_outcome("retry")
            log.info(
                "webhook_failed", error=error, attempts=delivery.attempts + 1, retry_at=retry_at.isoformat(), **fields
            )
        await self._record(Attempt(delivery.id, now, retry_at, error))

    async def _record(self, attempt: Attempt) -> None:
        """Record ``attempt`` with those that end meanwhile, in one transaction (one sync for many POSTs)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((attempt, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_batches())
        await asyncio.shield(done)

    async def _record_batches(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self._store.record_delivery_attempts(self._owner, [a for a, _ in batch])
            except StoreError:  # the leases expire and the deliveries are sent again: at least once
                log.exception("webhook_record_failed", deliveries=len(batch))
            for _, done in batch:
                if not done.done():
                    done.set_result(None)


class WebhookListener:
    """The runner as one of the daemon's faces (``gateway.listeners.Listener``): started with the others,
    stopped after them within the grace. Hourly, on the one daemon holding ``PURGE_SINGLETON``, settled
    deliveries (delivered or dead) older than ``retention_s`` are deleted."""

    name = "webhooks"

    def __init__(self, runner: WebhookRunner, store: WebhookStore, *, retention_s: float) -> None:
        self.runner = runner
        self._store = store
        self._retention_s = retention_s
        self._task: asyncio.Task[None] | None = None
        self._purge: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        self._task = asyncio.create_task(self.runner.run())
        self._purge = asyncio.create_task(self._purge_hourly())
        return {}

    async def _purge_hourly(self) -> None:
        while True:
            try:
                if await self._store.try_singleton(PURGE_SINGLETON):
                    before = utcnow() - timedelta(seconds=self._retention_s)
                    purged = await self._store.purge_settled_deliveries(before)
                    if purged:
                        log.info("webhook_deliveries_purged", count=purged, before=before.isoformat())
            except StoreError:
                log.exception("webhook_purge_failed")
            await asyncio.sleep(PURGE_EVERY_S)

    async def set_health(self, service: str, serving: bool) -> None:
        return None

    async def stop_accepting(self) -> None:
        return None

    async def stop(self, grace_s: float) -> None:
        if self._purge is not None:
            self._purge.cancel()
            await asyncio.gather(self._purge, return_exceptions=True)
            with contextlib.suppress(StoreError):
                await self._store.release_singleton(PURGE_SINGLETON)
        self.runner.stop(grace_s)
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), grace_s + 1)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
