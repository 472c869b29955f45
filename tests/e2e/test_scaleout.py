"""Scale-out: three ``fluxdepot serve`` processes on one PostgreSQL database and ONE shared data folder.

The daemons run as subprocesses on free loopback ports (``tests/e2e/daemon.py``) with short leases, so a
daemon killed with -9 has its flows recovered within seconds. Checks read the database directly and the
daemons' JSON logs (``return_flow_written`` is logged once per return flow written).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
import signal
import subprocess
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import asyncssh
import pytest

from clients.client import AsyncClient
from clients.errors import AlreadyExists, FluxdepotError, Unavailable
from engine.audit import verify_chain
from engine.status import FINAL_STATUSES, FlowEvent
from engine.store.postgres import PostgresStore
from tests import factory
from tests.e2e.daemon import RunningDaemon, start_daemon
from tests.pg import SERVER, PgCluster, find_bin

DEMO_KEY = Path(__file__).resolve().parents[2] / "config" / "demo" / "AAA001_ed25519"
TOKEN = "demo-technical-token"
LEASE_S = 3.0


def daemon_env(url: str) -> dict[str, str]:
    return {
        "FLUXDEPOT_STORE__URL": url,
        "FLUXDEPOT_STORE__POOL_MAX": "8",
        "FLUXDEPOT_WORKERS__COUNT": "4",
        "FLUXDEPOT_WORKERS__PROCESSES": "1",  # three daemons on a small machine
        "FLUXDEPOT_WORKERS__LEASE_S": str(LEASE_S),
        "FLUXDEPOT_WORKERS__RECOVER_EVERY_S": "1",
        "FLUXDEPOT_WATCHDOG__INTERVAL_S": "1",
        "FLUXDEPOT_SHUTDOWN__GRACE_S": "5",
    }


def start_three(data: Path, url: str) -> list[RunningDaemon]:
    """Three daemons started together on one data folder (they race for migrations and host keys)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(lambda _: start_daemon(data, env=daemon_env(url)), range(3)))


def stop_all(daemons: list[RunningDaemon]) -> None:
    """SIGTERM every live daemon; each must exit 0 within 30 s."""
    for d in daemons:
        if d.proc.poll() is None:
            d.signal(signal.SIGTERM)
    codes = []
    for d in daemons:
        try:
            codes.append(d.wait(30))
        except subprocess.TimeoutExpired:
            d.kill9()
            codes.append(None)
    assert all(code in (0, -9) for code in codes), codes


def invoice(number: str, *, supplier: factory.Party = factory.DEMO_SUPPLIER) -> bytes:
    return factory.ubl_invoice(factory.integrating(number, supplier))


def singleton_holders(daemons: list[RunningDaemon], name: str) -> int:
    """How many live daemons report holding singleton ``name`` on their metrics endpoint."""
    held = 0
    for d in daemons:
        if d.proc.poll() is not None:
            continue
        with urllib.request.urlopen(f"http://{d.ready['metrics']}/metrics", timeout=5) as response:
            text = response.read().decode()
        m = re.search(rf'^fluxdepot_singleton_held{{name="{name}"}} (\S+)$', text, re.M)
        held += int(float(m.group(1))) if m else 0
    return held


async def wait_for_holders(daemons: list[RunningDaemon], name: str, timeout_s: float = 20) -> None:
    for _ in range(int(timeout_s * 10)):
        if await asyncio.to_thread(singleton_holders, daemons, name) == 1:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no single holder of {name}")


async def deposit_grpc(target: str, prefix: str, count: int, acknowledged: list[str], *, retry: bool = False) -> None:
    """Deposit ``count`` distinct invoices; each acknowledged flow number is recorded. ``retry``: on
    UNAVAILABLE try the same tracking id again (ALREADY_EXISTS then means it was recorded after all)."""
    async with AsyncClient(target, token=TOKEN, timeout_s=30) as client:
        for i in range(count):
            name = f"{prefix}-{i}"
            while True:
                try:
                    result = await client.deposit(invoice(name), f"{name}.xml", tracking_id=name)
                except Unavailable as exc:
                    if not retry:
                        return
                    assert "database is unreachable" in exc.message or "connect" in exc.message.lower(), exc
                    await asyncio.sleep(0.2)
                    continue
                except AlreadyExists:
                    break
                except FluxdepotError:
                    if not retry:
                        return
                    raise
                acknowledged.append(result.flow_number)
                break


async def upload_sftp(port: int, key: Path, prefix: str, count: int, uploaded: list[str]) -> None:
    """Upload ``count`` invoices over SFTP as AAA001 (the close answers once the deposit is durable)."""
    with contextlib.suppress(OSError, asyncssh.Error):
        async with (
            asyncssh.connect("127.0.0.1", port, username="AAA001", client_keys=[str(key)], known_hosts=None) as conn,
            conn.start_sftp_client() as sftp,
        ):
            for i in range(count):
                name = f"{prefix}-{i}.xml"
                async with sftp.open(f"in/{name}", "wb") as fh:
                    await fh.write(invoice(f"{prefix}-{i}", supplier=factory.DEMO_SUPPLIER_2))
                uploaded.append(name)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "AAA001_ed25519"
    shutil.copyfile(DEMO_KEY, path)
    path.chmod(0o600)
    return path


@pytest.fixture
async def pg_url() -> str:
    SERVER.ensure()
    return await SERVER.create_database()


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server of this test's own, which it stops and starts."""
    if find_bin("initdb") is None:
        pytest.skip("initdb not found: cannot run a server of our own")
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
    except (RuntimeError, OSError) as exc:
        cluster.remove()
        pytest.skip(f"cannot start PostgreSQL: {exc}")
    yield cluster
    cluster.remove()


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, pool_min=1, pool_max=4)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def wait_all_final(store: PostgresStore, numbers: list[str], timeout_s: float) -> None:
    for _ in range(int(timeout_s * 4)):
        if await store.queue_depth() == 0:
            break
        await asyncio.sleep(0.25)
    for number in numbers:
        flow = await store.get_flow(number)
        assert flow is not None, number
        assert flow.status in FINAL_STATUSES, (number, flow.status)


async def check_processed_once(store: PostgresStore) -> Counter[str]:
    """Every flow: final, intact chain, one verdict; one CLAIMED per attempt (a second claim only after
    its lease expired), never two claims in a row. Returns the count of each flow's verdict status."""
    outcomes: Counter[str] = Counter()
    for number in await store.all_flow_numbers():
        history = await store.history(number)
        assert verify_chain(history) == [], number
        assert history[-1].status in FINAL_STATUSES, (number, history[-1].status)
        events = [c.event for c in history if c.event is not None]
        assert sum(1 for c in history if c.status in FINAL_STATUSES) == 1, (number, events)
        claims = [i for i, e in enumerate(events) if e is FlowEvent.CLAIMED]
        expiries = [i for i, e in enumerate(events) if e is FlowEvent.LEASE_EXPIRED]
        assert len(claims) == len(expiries) + 1, (number, events)
        for earlier, later in itertools.pairwise(claims):
            assert any(earlier < x < later for x in expiries), (number, events)  # claimed twice at once
        outcomes[history[-1].status.name] += 1
    return outcomes


def return_flows_written(daemons: list[RunningDaemon]) -> Counter[str]:
    return Counter(e["flow_number"] for d in daemons for e in d.events() if e.get("event") == "return_flow_written")


async def check_return_flows(
    store: PostgresStore, data: Path, daemons: list[RunningDaemon], count: int, killed: RunningDaemon | None = None
) -> None:
    """Each EDI flow got its report in out/ exactly once: one file, recorded once, one logged write across
    all daemons. The daemon ``killed`` with -9 may have written and recorded a file without living to log
    it; such a file must be recorded, and no other daemon may have written it again."""
    out = data / "sftp" / "partners" / "AAA001" / "out"
    for _ in range(300):
        if not await store.pending_return_flows(1):
            break
        await asyncio.sleep(0.1)
    edi = [f for n in await store.all_flow_numbers() if (f := await store.get_flow(n)) and f.partner_code]
    assert len(edi) == count
    names = {p.name for p in out.iterdir()}
    writes = return_flows_written(daemons)
    for flow in edi:
        name = f"FSO1100A_AAA001_{flow.flow_number}.xml"
        assert name in names, flow.flow_number
        assert flow.return_flows.count(name) == 1, (flow.flow_number, flow.return_flows)
        unlogged_ok = killed is not None and writes[flow.flow_number] == 0
        assert writes[flow.flow_number] == 1 or unlogged_ok, (flow.flow_number, writes[flow.flow_number])
    assert not [n for n in names if n.startswith(".")], "a temporary outbox file is visible"


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_three_daemons_share_1000_deposits_each_processed_exactly_once(
    tmp_path: Path, pg_url: str, key: Path
) -> None:
    """Three daemons on one database and one data folder take 1,000 deposits spread over all three
    (900 over gRPC, 100 over SFTP): every flow reaches a final status with one claim and one verdict, each
    SFTP flow gets exactly one report, the daemons serve the same SFTP host key, and exactly one daemon
    runs each periodic singleton."""
    data = tmp_path / "data"
    daemons = start_three(data, pg_url)
    try:
        fingerprints = {e["fingerprint"] for d in daemons for e in d.events() if e.get("event") == "sftp_host_key"}
        assert len(fingerprints) == 2, fingerprints  # ed25519 and RSA, the same on all three
        acknowledged: list[str] = []
        uploaded: list[str] = []
        clients = [
            deposit_grpc(d.ready["grpc"], f"G{i}C{c}", 150, acknowledged)
            for i, d in enumerate(daemons)
            for c in range(2)
        ]
        clients += [
            upload_sftp(int(d.ready["sftp"].rpartition(":")[2]), key, f"S{i}", 34 if i < 2 else 32, uploaded)
            for i, d in enumerate(daemons)
        ]
        await asyncio.gather(*clients)
        assert len(acknowledged) == 900 and len(uploaded) == 100
        async with opened(pg_url) as store:
            await wait_all_final(store, acknowledged, 150)
            outcomes = await check_processed_once(store)
            assert sum(outcomes.values()) == 1000 and outcomes["INTEGRATED"] == 1000, outcomes
            await check_return_flows(store, data, daemons, 100)
        assert await asyncio.to_thread(singleton_holders, daemons, "watchdog") == 1
        assert await asyncio.to_thread(singleton_holders, daemons, "outbox") == 1
    finally:
        stop_all(daemons)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_kill_9_of_one_daemon_its_flows_and_singletons_pass_to_the_others(
    tmp_path: Path, pg_url: str, key: Path
) -> None:
    """The daemon holding the outbox singleton is killed with -9 in the middle of a run: the flows it had
    leased are finished by the other two after the lease expires (one extra claim, after a LEASE_EXPIRED),
    every acknowledged flow reaches a final status, the outbox and watchdog singletons pass to a survivor,
    and every SFTP flow still gets exactly one report."""
    data = tmp_path / "data"
    daemons = start_three(data, pg_url)
    try:
        await wait_for_holders(daemons, "outbox")
        victim = next(d for d in daemons if singleton_holders([d], "outbox") == 1)
        others = [d for d in daemons if d is not victim]
        acknowledged: list[str] = []
        uploaded: list[str] = []
        clients = [
            asyncio.create_task(deposit_grpc(d.ready["grpc"], f"K{i}", 120, acknowledged))
            for i, d in enumerate(daemons)
        ]
        clients += [
            asyncio.create_task(upload_sftp(int(d.ready["sftp"].rpartition(":")[2]), key, f"KS{i}", 20, uploaded))
            for i, d in enumerate(others)
        ]
        for _ in range(200):  # kill it while it is working
            if sum(1 for e in victim.events() if e.get("event") == "flow_processed") >= 20:
                break
            await asyncio.sleep(0.05)
        victim.kill9()
        await asyncio.gather(*clients)
        await wait_for_holders(others, "outbox")
        await wait_for_holders(others, "watchdog")
        async with opened(pg_url) as store:
            await wait_all_final(store, acknowledged, 90)
            await check_processed_once(store)
            assert await store.queue_depth() == 0
            await check_return_flows(store, data, daemons, len(uploaded), killed=victim)
        recovered = [e for d in others for e in d.events() if e.get("event") == "lease_recovered"]
        assert recovered, "the killed daemon held no lease: nothing was recovered"
    finally:
        stop_all(daemons)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_postgresql_restart_refuses_deposits_then_recovers_losing_nothing(
    tmp_path: Path, own_cluster: PgCluster, key: Path
) -> None:
    """PostgreSQL restarted under load: meanwhile deposits are refused with UNAVAILABLE ("the database is
    unreachable"), SFTP closes fail with an SFTP error, workers pause; once it is back the daemons resume by
    themselves and every acknowledged flow is there, once, and reaches a final status."""
    admin = await asyncpg.connect(own_cluster.url, timeout=10)
    await admin.execute("CREATE DATABASE scaleout")
    await admin.close()
    url = own_cluster.url.rpartition("/")[0] + "/scaleout"
    data = tmp_path / "data"
    daemons = start_three(data, url)
    try:
        acknowledged: list[str] = []
        clients = [
            asyncio.create_task(deposit_grpc(d.ready["grpc"], f"R{i}", 100, acknowledged, retry=True))
            for i, d in enumerate(daemons)
        ]
        sftp_port = int(daemons[1].ready["sftp"].rpartition(":")[2])
        async with (  # logged in before the outage (authentication reads the directory in the database)
            asyncssh.connect("127.0.0.1", sftp_port, username="AAA001", client_keys=[str(key)], known_hosts=None) as c,
            c.start_sftp_client() as sftp,
        ):
            for _ in range(1200):  # until some deposits went through
                if len(acknowledged) >= 60:
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(own_cluster.stop, "fast")
            async with AsyncClient(daemons[0].ready["grpc"], token=TOKEN) as client:
                with pytest.raises(Unavailable, match="database is unreachable"):
                    await client.deposit(invoice("DOWN-1"), "down.xml")
            await asyncio.sleep(2.5)  # past the SFTP partner cache
            with pytest.raises(asyncssh.SFTPFailure, match="database is unavailable"):
                async with sftp.open("in/down.xml", "wb") as fh:
                    await fh.write(invoice("DOWN-2", supplier=factory.DEMO_SUPPLIER_2))
        await asyncio.to_thread(own_cluster.start)
        await asyncio.wait_for(asyncio.gather(*clients), 120)
        assert len(acknowledged) == len(set(acknowledged)) == 300
        async with opened(url) as store:
            await wait_all_final(store, acknowledged, 90)
            assert sorted(await store.all_flow_numbers()) == sorted(acknowledged)
            await check_processed_once(store)
        paused = {"claim_failed", "flow_interrupted"}  # idle workers fail to claim, busy ones hand back
        assert any(e.get("event") in paused for d in daemons for e in d.events())
    finally:
        stop_all(daemons)
