"""Webhook subscriptions over the JSON API (``/api/v1/webhooks``), on a real server and store with the demo
directory: who may subscribe and to what, the secret shown once, deliveries queued by a deposit, removal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.cpu_pool import CpuPool
from tests.grpc_support import invoice
from tests.http_support import MANAGER, TECH, TECH_LOGIN, VIEWER, HttpEnv

SUPPLIER = "40483304800022"
HOOK = "https://hooks.example.test/fluxdepot"


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    e = await HttpEnv.start(tmp_path, cpu_pool)
    try:
        yield e
    finally:
        await e.close()


async def test_subscribe_list_deliveries_remove(env: HttpEnv) -> None:
    """A manager who follows a structure subscribes it, a technical user subscribes itself; each sees the
    subscriptions it manages (never a secret again); a deposit queues one delivery per subscription; a
    pending delivery cannot be redelivered; once removed, a subscription and its deliveries are gone."""
    async with env.client(MANAGER) as manager, env.client(TECH) as tech:
        r = await manager.post(
            "/api/v1/webhooks",
            json={"url": HOOK, "owner_kind": "structure", "owner": SUPPLIER, "statuses": ["INTEGRATED", "REJECTED"]},
        )
        assert r.status_code == 201, r.text
        structure_hook = r.json()
        assert len(structure_hook["secret"]) >= 32
        assert structure_hook["webhook"]["statuses"] == ["INTEGRATED", "REJECTED"]
        r = await tech.post("/api/v1/webhooks", json={"url": HOOK + "/tech", "format": "afnor"})
        assert r.status_code == 201, r.text
        tech_hook = r.json()["webhook"]
        assert (tech_hook["owner_kind"], tech_hook["owner"], tech_hook["siret"]) == ("technical", TECH_LOGIN, SUPPLIER)

        mine = (await tech.get("/api/v1/webhooks")).json()["webhooks"]
        assert [w["id"] for w in mine] == [tech_hook["id"]] and "secret" not in mine[0]
        managed = (await manager.get("/api/v1/webhooks")).json()["webhooks"]
        assert [w["id"] for w in managed] == [structure_hook["webhook"]["id"], tech_hook["id"]]

        deposited = await tech.post("/api/v1/flows", files={"file": ("f.xml", invoice("WH-0001"))})
        assert deposited.status_code == 202, deposited.text
        (queued,) = (await tech.get("/api/v1/webhooks/deliveries")).json()["deliveries"]
        assert (queued["webhook_id"], queued["status"], queued["state"]) == (tech_hook["id"], "RECEIVED", "pending")
        again = await tech.post(f"/api/v1/webhooks/deliveries/{queued['id']}/redeliver")
        assert again.status_code == 409

        assert (await manager.delete(f"/api/v1/webhooks/{tech_hook['id']}")).status_code == 204
        assert (await tech.get("/api/v1/webhooks")).json()["webhooks"] == []
        gone = await tech.get("/api/v1/webhooks/deliveries", params={"webhook": tech_hook["id"]})
        assert gone.status_code == 404
        assert (await tech.delete(f"/api/v1/webhooks/{structure_hook['webhook']['id']}")).status_code == 404


async def test_who_may_subscribe(env: HttpEnv) -> None:
    """A user without the manager role cannot subscribe a structure (403), a technical user cannot
    subscribe its whole structure (it sees only its own flows), an unknown structure is 404, and a URL that
    is not absolute http(s) is 400 naming the field."""
    async with env.client(VIEWER) as viewer, env.client(TECH) as tech, env.client(MANAGER) as manager:
        body = {"url": HOOK, "owner_kind": "structure", "owner": SUPPLIER}
        assert (await viewer.post("/api/v1/webhooks", json=body)).status_code == 403
        assert (await tech.post("/api/v1/webhooks", json=body)).status_code == 403
        unknown = await manager.post("/api/v1/webhooks", json={**body, "owner": "99999999999999"})
        assert unknown.status_code == 404
        bad = await manager.post("/api/v1/webhooks", json={**body, "url": "ftp://x/y"})
        assert bad.status_code == 400 and bad.json()["errorMessage"].startswith("url:")
        assert (await viewer.get("/api/v1/webhooks")).json()["webhooks"] == []
