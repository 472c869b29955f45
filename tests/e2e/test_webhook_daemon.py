"""Webhooks through the real daemon: subscribed with ``fluxdepot-cli webhooks add``, the daemon killed with
-9 while POSTs are in flight, restarted; every status change reaches the receiver at least once, in order
per flow, and nothing more after the subscription is removed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clients.client import AsyncClient
from engine.store import open_store
from engine.webhooks import verify
from tests import factory
from tests.e2e.daemon import REPO, start_daemon
from tests.webhook_receiver import Receiver

SUPPLIER = "40483304800022"
SECRET = "e2e-webhook-secret-0123456789"
FLOWS = 6
ENV = {
    "FLUXDEPOT_WEBHOOKS__TIMEOUT_S": "1",  # lease 2 x 1 + 5 s: a killed daemon's POSTs are claimed again soon
    "FLUXDEPOT_WEBHOOKS__FIRST_RETRY_S": "0.2",
    "FLUXDEPOT_WEBHOOKS__MAX_RETRY_S": "1",
}


def cli(target: str, *args: str) -> str:
    """``fluxdepot-cli`` as a user runs it (the demo manager's token)."""
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "--target", target, *args],
        cwd=REPO,
        env={**os.environ, "FLUXDEPOT_TOKEN": "demo-manager-token", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def deposit(target: str, prefix: str, n: int) -> list[str]:
    async with AsyncClient(target, token="demo-technical-token") as client:
        return [
            (
                await client.deposit(factory.ubl_invoice(factory.integrating(f"{prefix}-{i}")), f"{prefix}-{i}.xml")
            ).flow_number
            for i in range(n)
        ]


@pytest.mark.timeout(300)
async def test_kill_9_mid_delivery_delivers_every_change_in_order(tmp_path: Path) -> None:
    """Changes committed before a kill -9 (some POSTs in flight) are all delivered after the restart, at
    least once, in order per flow, signed; after ``webhooks remove`` nothing more is sent."""
    data = tmp_path / "data"
    receiver = await Receiver(delay_s=0.3).start()
    try:
        daemon = start_daemon(data, env=ENV)
        target = daemon.ready["grpc"]
        added = json.loads(
            cli(target, "webhooks", "add", receiver.url, "--structure", SUPPLIER, "--secret", SECRET, "--json")
        )
        hook_id = added["webhook"]["id"]
        numbers = await deposit(target, "WH", FLOWS)
        await receiver.wait_for(3, timeout_s=60)  # some delivered, more in flight (0.3 s each) or queued
        daemon.kill9()

        daemon = start_daemon(data, env=ENV)
        target = daemon.ready["grpc"]
        async with AsyncClient(target, token="demo-technical-token") as client:
            for number in numbers:
                await asyncio.wait_for(client.wait_final(number), 120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until every flow's final status came in
            finals = {r.json()["flow_number"] for r in receiver.requests if r.json()["status"] == "INTEGRATED"}
            if finals >= set(numbers):
                break
            await asyncio.sleep(0.2)

        assert f"{hook_id}" in cli(target, "webhooks", "list")
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"http://{daemon.ready['metrics']}/metrics")).text
        delivered = re.search(r'^fluxdepot_webhook_attempts_total\{outcome="delivered"\} (\S+)$', metrics, re.M)
        assert delivered is not None and float(delivered.group(1)) >= 1, metrics[-2000:]
        cli(target, "webhooks", "remove", str(hook_id))
        seen = len(receiver.requests)
        later = await deposit(target, "AFTER", 1)
        async with AsyncClient(target, token="demo-technical-token") as client:
            await asyncio.wait_for(client.wait_final(later[0]), 120)
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == seen, "a POST after the subscription was removed"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        await receiver.stop()

    store = await open_store(f"sqlite:///{data / 'fluxdepot.db'}")
    try:
        for number in numbers:
            got = [r for r in receiver.requests if r.json()["flow_number"] == number]
            for r in got:
                assert verify(SECRET, r.body, r.headers["x-fluxdepot-signature"], now=int(time.time()))
            ids = [int(r.headers["x-fluxdepot-delivery"]) for r in got]
            assert ids == sorted(ids), f"{number}: out of order {ids}"  # duplicates (resent) stay adjacent
            statuses = [r.json()["status"] for r in dict(zip(ids, got, strict=True)).values()]
            assert statuses == [c.status.name for c in await store.history(number)]
    finally:
        await store.close()
