"""The daemon killed with -9 at random moments while clients deposit, and a data folder that fills up."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from clients.client import AsyncClient
from clients.errors import ResourceExhausted
from engine.audit import verify_chain
from engine.status import FlowStatus
from engine.store import open_store
from tests import factory
from tests.e2e.daemon import start_daemon
from tests.tmpfs import mounted_tmpfs

KILL_CYCLES = 5  # kill -9 / restart cycles while gRPC and SFTP clients deposit
DEMO_KEY = Path(__file__).resolve().parents[2] / "config" / "demo" / "AAA001_ed25519"
PROVIDER = "55210055400013"  # AAA001's structure


async def deposit_until_failure(target: str, prefix: str, acknowledged: list[str]) -> None:
    """Deposit distinct invoices until the daemon goes away; record each acknowledged flow number."""
    async with AsyncClient(target, token="demo-technical-token") as client:
        for i in range(100_000):
            content = factory.ubl_invoice(factory.integrating(f"{prefix}-{i}"))
            try:
                result = await client.deposit(content, f"{prefix}-{i}.xml", tracking_id=f"{prefix}-{i}")
            except Exception:
                return
            acknowledged.append(result.flow_number)


async def upload_until_failure(port: int, key: Path, prefix: str, acknowledged: list[str]) -> None:
    """Upload distinct invoices over SFTP as AAA001 until the daemon goes away; a file counts as
    acknowledged once the server answered its close (the deposit is durable before that answer)."""
    try:
        async with (
            asyncssh.connect("127.0.0.1", port, username="AAA001", client_keys=[str(key)], known_hosts=None) as conn,
            conn.start_sftp_client() as sftp,
        ):
            for i in range(100_000):
                name = f"{prefix}-{i}.xml"
                content = factory.ubl_invoice(
                    replace(factory.integrating(f"{prefix}-{i}"), supplier=factory.DEMO_SUPPLIER_2)
                )
                fh = await sftp.open(f"in/{name}", "wb")
                await fh.write(content)
                # asyncssh's close() returns silently, sending nothing, once the session has ended: only a
                # close actually sent (and then answered, or it raises) acknowledges the upload.
                sent = fh._handler._writer is not None
                await fh.close()
                if sent:
                    acknowledged.append(name)
    except (OSError, asyncssh.Error):
        return


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_kill_9_under_load_loses_no_acknowledged_flow(tmp_path: Path) -> None:
    """Across KILL_CYCLES kill -9 / restart cycles under gRPC load, every acknowledged deposit exists once,
    reaches a final status (or is held), keeps an intact history, and nothing is left half-created."""
    data = tmp_path / "data"
    rng = random.Random(27112026)
    acknowledged: list[str] = []
    uploaded: list[str] = []
    key = tmp_path / "AAA001_ed25519"
    shutil.copyfile(DEMO_KEY, key)
    key.chmod(0o600)
    for cycle in range(KILL_CYCLES):
        daemon = start_daemon(data)
        sftp_port = int(daemon.ready["sftp"].rpartition(":")[2])
        clients = [
            asyncio.create_task(deposit_until_failure(daemon.ready["grpc"], f"C{cycle}W{w}", acknowledged))
            for w in range(2)
        ]
        clients.append(asyncio.create_task(upload_until_failure(sftp_port, key, f"S{cycle}", uploaded)))
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        daemon.kill9()
        await asyncio.gather(*clients)
    assert len(acknowledged) == len(set(acknowledged))
    assert acknowledged and uploaded, "the clients deposited nothing before the kills"

    daemon = start_daemon(data)
    try:
        async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
            for number in acknowledged:
                flow = await asyncio.wait_for(client.wait_final(number), 120)
                assert flow.status in ("INTEGRATED", "WAITING_FOR_REPROCESSING"), (number, flow.status)
        async with AsyncClient(daemon.ready["grpc"], token="demo-manager-token") as manager:
            sftp_flows = {}
            for name in uploaded:
                page = await manager.search(file_name=name, issuer_sirets=[PROVIDER])
                matches = [f for f in page.flows if f.file_name == name]
                assert len(matches) == 1, (name, matches)  # deposited exactly once
                sftp_flows[name] = await asyncio.wait_for(manager.wait_final(matches[0].flow_number), 120)
        out = data / "sftp" / "partners" / "AAA001" / "out"
        for _ in range(200):  # the outbox writes return flows shortly after the verdicts
            names = {p.name for p in out.iterdir()}
            if all(any(f.flow_number in n for n in names) for f in sftp_flows.values()):
                break
            await asyncio.sleep(0.1)
        for name, flow in sftp_flows.items():
            reports = [n for n in names if n == f"FSO1100A_AAA001_{flow.flow_number}.xml"]
            assert len(reports) == 1, (name, flow.flow_number)  # one return flow, none missing
        assert not [n for n in names if n.startswith(".")], "a temporary outbox file is visible"
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0

    store = await open_store(f"sqlite:///{data / 'fluxdepot.db'}")
    try:
        numbers = await store.all_flow_numbers()
        assert set(acknowledged) <= set(numbers)
        for number in numbers:  # including flows whose acknowledgement the client never saw
            flow = await store.get_flow(number)
            assert flow is not None
            assert flow.status.is_final or flow.status is FlowStatus.WAITING_FOR_REPROCESSING
            assert verify_chain(await store.history(number)) == []
        assert await store.queue_depth() == 0
    finally:
        await store.close()


@pytest.mark.timeout(300)
async def test_disk_full_refuses_deposits_then_recovers(tmp_path: Path) -> None:
    """On a full data folder deposits get RESOURCE_EXHAUSTED with a clear message, earlier flows stay
    intact, and deposits work again once space is freed."""
    with mounted_tmpfs(tmp_path / "data", "24m") as data:
        daemon = start_daemon(data)
        try:
            async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
                first = await client.deposit(factory.ubl_invoice(factory.integrating("FULL-0")), "first.xml")
                assert (await asyncio.wait_for(client.wait_final(first.flow_number), 60)).status == "INTEGRATED"
                filler = data / "filler"
                with filler.open("wb") as fh:  # fill the disk up to the last bytes
                    try:
                        while True:
                            fh.write(b"\0" * (1 << 20))
                            fh.flush()
                    except OSError:
                        pass
                with pytest.raises(ResourceExhausted, match="full"):
                    for i in range(50):
                        await client.deposit(factory.ubl_invoice(factory.integrating(f"FULL-{i + 1}")) * 20, f"{i}.xml")
                filler.unlink()
                again = await client.deposit(factory.ubl_invoice(factory.integrating("FULL-AFTER")), "after.xml")
                assert (await asyncio.wait_for(client.wait_final(again.flow_number), 60)).status == "INTEGRATED"
                assert (await client.get_flow(first.flow_number)).status == "INTEGRATED"
        finally:
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
