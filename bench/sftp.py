"""SFTP intake speed: fluxdepot's asyncssh server against OpenSSH's own ``sshd`` + ``internal-sftp``.

Three servers run as separate processes on loopback ports in the same run and are driven by the same
clients: asyncssh's client (AES-GCM, the server's largest write size) for every figure, and the OpenSSH
``sftp`` program for the large file. OpenSSH writes to a temp folder (no fsync: the physical limit of
SFTP here); a bare asyncssh ``SFTPServer`` chrooted to a temp folder (no fsync either) is the framework's
own limit, as the bare grpc.aio echo server is for ``bench.deposit``; fluxdepot turns each closed upload
into a durable deposit (blob fsynced, flow committed) before acknowledging it. The intake measures run in
``--rounds`` rounds, each measure taken on the three servers back to back (a shared machine's speed
changes from one minute to the next); the table gives each server's median and the median of the
rounds' ratios, then the rounds' ratios to OpenSSH.

Part ``e2e``: end to end through ``fluxdepot serve`` (demo config, SQLite, ports 0). ``--e2e-clients``
asyncssh clients drop ``--e2e-flows`` distinct single-invoice UBL flows in partner AAA001's ``in/``; the
clock runs from the first drop until every integration report ``FSO1100A_AAA001_<flow>.xml`` is in its
``out/`` (the folder is polled on disk every 10 ms). The baseline, in the same run on a fresh daemon, is the
engine's own processing rate: the same number of invoices deposited over gRPC by as many clients, until
every final status arrived on a ``WatchFlows`` stream. Latency per flow: drop (upload or deposit call
started) → report seen (SFTP) or final status seen (gRPC). The pair runs ``--e2e-rounds`` times, and the
median of the rounds' ratios is the figure; each run also shows the CPU milliseconds per flow of the
daemon's own process, of its child processes (validation pool, deposits' writer) and of the load generator.

    .venv/bin/python -m bench.sftp [--parts intake,e2e] [--large-mb 50] [--small 2000] [--logins 100]
                                   [--rounds 3] [--e2e-flows 1000] [--e2e-clients 8] [--e2e-rounds 3]

Run as root (``sshd`` needs it); ``apt-get install -y openssh-server`` when ``/usr/sbin/sshd`` is missing.
Targets: ≥ 60% of OpenSSH's MB/s on the large file, ≥ 50% of its files/s on small files, and the end-to-end
SFTP flows/s at the engine's processing rate (ratio ≈ 100%).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncssh

from bench.cpu import cpu_seconds, own_cpu_seconds
from clients.client import AsyncClient
from tests import factory
from tests.e2e.daemon import RunningDaemon, start_daemon

REPO = Path(__file__).resolve().parent.parent
DEMO_KEY = REPO / "config" / "demo" / "AAA001_ed25519"
DEMO_DIRECTORY = REPO / "config" / "demo" / "directory.toml"
SSHD = Path("/usr/sbin/sshd")
CIPHER = "aes128-gcm@openssh.com"
MiB = 1024 * 1024
PARTNER = "AAA001"  # the demo EDI partner (config/demo/directory.toml), deposits for the provider structure
TECHNICAL_TOKEN = "demo-technical-token"  # noqa: S105 - the public demo token; its user deposits for DEMO_SUPPLIER
REPORT_NAME = re.compile(rf"^FSO1100A_{PARTNER}_(?P<flow>[A-Za-z0-9]+)\.xml$")
OUT_POLL_S = 0.01


# --- the fluxdepot server, in its own process -------------------------------------------------------


async def serve(data: Path, port_file: Path) -> None:
    """Run fluxdepot's SFTP intake (store, blobs, deposit service, outbox) until SIGTERM."""
    from engine import ENGINE_VERSION
    from engine.blobs import BlobStore
    from engine.deposit import DepositService
    from engine.directory_file import load_directory
    from engine.model import Limits
    from engine.services.auth import PartnerAuthenticator
    from engine.store import open_store
    from gateway.logs import configure_logging
    from gateway.outbox import OutboxWriter
    from gateway.sftp_auth import Credentials
    from gateway.sftp_intake import Intake
    from gateway.sftp_paths import PartnerFolders
    from gateway.sftp_server import SftpSettings, auth_settings, intake_settings, start_sftp_server

    configure_logging("info", "json")  # as the daemon logs (to stdout, discarded here)
    store = await open_store(f"sqlite:///{data / 'fluxdepot.db'}")
    await store.import_directory(load_directory(DEMO_DIRECTORY))
    limits = Limits(max_flow_bytes=128 * MiB)
    deposits = DepositService(store, BlobStore(data / "blobs"), limits)
    outbox = OutboxWriter(store, PartnerFolders(data / "sftp"), engine_version=ENGINE_VERSION)
    settings = SftpSettings(max_flow_bytes=limits.max_flow_bytes, quota_files=100_000, quota_bytes=1 << 40)
    lockouts = auth_settings(settings)  # wired as gateway.daemon wires the SFTP face
    credentials = Credentials(PartnerAuthenticator(store, lockouts.lockouts), lockouts)
    intake = Intake(deposits, outbox, outbox.folders, intake_settings(settings), find_partner=store.get_partner)
    server, port = await start_sftp_server(credentials, intake, settings, "127.0.0.1:0")
    port_file.write_text(str(port))  # noqa: ASYNC240 - once, at start, before any client
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    await store.close()


async def serve_bare(root: Path, port_file: Path) -> None:
    """A bare asyncssh SFTP server (chrooted to ``root``, the demo key authorised) until SIGTERM."""
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        authorized_client_keys=str(DEMO_KEY.with_suffix(".pub")),
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)),
        allow_scp=False,
        line_editor=False,  # configured as fluxdepot's server is: the framework's limit for the same setup
    )
    port_file.write_text(str(server.sockets[0].getsockname()[1]))  # noqa: ASYNC240 - once, at start
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def start_server(work: Path, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``bench.sftp --serve`` (fluxdepot) or ``--serve-bare`` (asyncssh alone) in a process."""
    data = work / kind
    data.mkdir()
    port_file = work / f"{kind}.port"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sftp", f"--{'serve' if kind == 'fluxdepot' else 'serve-bare'}", str(data),
         str(port_file)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the {kind} SFTP server did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


# --- OpenSSH sshd + internal-sftp --------------------------------------------------------------------


def start_sshd(work: Path, public_key: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    if not SSHD.exists():
        raise SystemExit("sshd is missing: apt-get install -y openssh-server")
    root = work / "sshd"
    root.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True)
    (root / "authorized_keys").write_text(public_key)
    upload = root / "upload"
    upload.mkdir()
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nUsePAM no\nPermitRootLogin yes\nStrictModes no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n"
        "ForceCommand internal-sftp\nMaxStartups 100:30:200\nMaxSessions 100\n"
    )
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError("sshd did not start")
    return proc, port, upload


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- measurements -------------------------------------------------------------------------------------


class Target:
    def __init__(self, name: str, port: int, user: str, key: Path, upload_dir: str, pid: int | None = None) -> None:
        self.name, self.port, self.user, self.key, self.upload_dir = name, port, user, key, upload_dir
        self.pid = pid  # the server process, for its CPU time (sshd: the master, which reaps its sessions)

    async def connect(self) -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=self.user,
            client_keys=[str(self.key)],
            known_hosts=None,
            agent_path=None,
            encryption_algs=[CIPHER],
        )


async def timed(action: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def large_asyncssh(target: Target, path: Path) -> float:
    async with await target.connect() as conn, conn.start_sftp_client() as sftp:
        return await timed(
            lambda: sftp.put(str(path), f"{target.upload_dir}/large.xml")  # blocks: the server's max write
        )


async def large_openssh(target: Target, path: Path) -> float:
    args = [
        "sftp", "-q", "-b", "-", "-i", str(target.key), "-P", str(target.port), "-c", CIPHER,
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", f"{target.user}@127.0.0.1",
    ]  # fmt: skip
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    await proc.communicate(f"put {path} {target.upload_dir}/large-openssh.xml\n".encode())
    if proc.returncode != 0:
        raise RuntimeError(f"sftp failed against {target.name}")
    return time.perf_counter() - started  # includes the login (~10 ms)


async def small_files(target: Target, count: int, clients: int, payload: bytes) -> float:
    async def one_client(index: int, n: int) -> None:
        async with await target.connect() as conn, conn.start_sftp_client() as sftp:
            for i in range(n):
                async with sftp.open(f"{target.upload_dir}/c{index}-{i}.xml", "wb") as f:
                    await f.write(payload)

    share = count // clients
    return await timed(lambda: gather(*(one_client(c, share) for c in range(clients))))


async def gather(*aws: Awaitable[None]) -> None:
    await asyncio.gather(*aws)


async def logins(target: Target, count: int) -> float:
    async def run() -> None:
        for _ in range(count):
            async with await target.connect() as conn, conn.start_sftp_client() as sftp:
                await sftp.realpath(".")

    return await timed(run)


async def server_cpu_ms(target: Target, files: int, run: Callable[[], Awaitable[float]]) -> tuple[float, float]:
    """``run()``'s result, and the server's CPU milliseconds per file while it ran."""
    before = cpu_seconds(target.pid)
    result = await run()
    await asyncio.sleep(0.3)  # sshd reaps its session processes once their connection closed
    return result, (cpu_seconds(target.pid) - before) * 1000 / files


Results = dict[str, dict[str, list[float]]]  # target → measure → one value per round


async def measure(targets: list[Target], args: argparse.Namespace, work: Path) -> Results:
    """``args.rounds`` rounds; in each, every measure is taken on the three targets one after the other, so
    that the load of a shared machine at that minute weighs on the three alike."""
    large = work / "large.xml"

    def fresh_large() -> Path:
        """New random bytes for each large upload: a partner's flows differ, and fluxdepot stores equal
        content once (re-verifying the stored copy), which a repeated file would measure instead."""
        large.write_bytes(os.urandom(args.large_mb * MiB))
        return large

    async def small(target: Target, clients: int) -> tuple[float, float]:
        seconds, cpu_ms = await server_cpu_ms(
            target, args.small, lambda: small_files(target, args.small, clients, payload)
        )
        return args.small / seconds, cpu_ms

    payload = os.urandom(10 * 1024)
    results: Results = {t.name: {} for t in targets}
    for target in targets:
        await large_asyncssh(target, fresh_large())  # warm-up (connection code paths, first deposit)
    for _ in range(args.rounds):
        for name, upload in (("asyncssh client", large_asyncssh), ("OpenSSH sftp", large_openssh)):
            for target in targets:
                _add(results, target, f"large MiB/s ({name})", args.large_mb / await upload(target, fresh_large()))
        for clients in (1, 8):
            for target in targets:
                rate, cpu_ms = await small(target, clients)
                _add(results, target, f"small files/s, {clients} client{'s' if clients > 1 else ''}", rate)
                _add(results, target, f"  server CPU ms per file, {clients}", cpu_ms)
        for target in targets:
            _add(results, target, "logins/s", args.logins / await logins(target, args.logins))
    return results


def _add(results: Results, target: Target, name: str, value: float) -> None:
    results[target.name].setdefault(name, []).append(value)


def print_table(results: Results) -> None:
    """Each target's median over the rounds, and the median of the rounds' ratios; the rounds' own
    ratios to OpenSSH after them."""
    ours, bare, base = results["fluxdepot"], results["asyncssh"], results["openssh"]
    rounds = len(next(iter(ours.values())))
    print(f"medians over {rounds} round{'s' if rounds > 1 else ''}")
    print(
        f"{'measure':<32} {'fluxdepot':>10} {'asyncssh':>10} {'openssh':>10} {'vs openssh':>11} {'vs asyncssh':>12}"
        "  rounds vs openssh"
    )
    for name, values in ours.items():
        med = statistics.median
        if "CPU" in name:  # lower is better: no ratio
            print(f"{name:<32} {med(values):>10.2f} {med(bare[name]):>10.2f} {med(base[name]):>10.2f}")
            continue
        vs_base = [v / b for v, b in zip(values, base[name], strict=True)]
        vs_bare = [v / b for v, b in zip(values, bare[name], strict=True)]
        print(
            f"{name:<32} {med(values):>10.1f} {med(bare[name]):>10.1f} {med(base[name]):>10.1f} {med(vs_base):>10.0%}"
            f" {med(vs_bare):>11.0%}  {' '.join(f'{x:.0%}' for x in vs_base)}"
        )
    print("  asyncssh: a bare asyncssh SFTPServer, no deposit and no fsync (the framework's own limit)")


# --- end to end through `fluxdepot serve`: drop in in/ → report in out/, against gRPC deposit → final ---


def e2e_invoices(supplier: factory.Party, prefix: str, count: int) -> dict[str, bytes]:
    """``count`` distinct single-invoice UBL flows (file name → content) that integrate under the demo directory."""
    return {
        f"{prefix}-{i:05d}.xml": factory.ubl_invoice(
            factory.InvoiceSpec(f"{prefix}-{i:05d}", supplier, factory.DEMO_BUYER_SERVICE, service_code="SERV-COMPTA")
        )
        for i in range(count)
    }


@dataclass
class E2eRun:
    """Wall-clock times per file name: drop (upload or deposit started), final status (store), done (seen)."""

    name: str
    dropped: dict[str, float] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds: daemon, its child processes, load generator

    @property
    def elapsed(self) -> float:
        return max(self.done.values()) - min(self.dropped.values())

    @property
    def rate(self) -> float:
        return len(self.done) / self.elapsed

    def latencies(self, start: dict[str, float], end: dict[str, float]) -> list[float]:
        return sorted(end[name] - start[name] for name in self.dropped)


def read_flows(data: Path) -> dict[str, tuple[str, str, float]]:
    """flow number → (file name, status, when its status last changed) from the daemon's SQLite store."""
    with sqlite3.connect(f"file:{data / 'fluxdepot.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT flow_number, file_name, status, status_changed_at FROM flows").fetchall()
    return {number: (name, status, datetime.fromisoformat(at).timestamp()) for number, name, status, at in rows}


def finish(run: E2eRun, data: Path, done_by_flow: dict[str, float]) -> E2eRun:
    for number, (name, status, changed_at) in read_flows(data).items():
        if name in run.dropped:
            run.final[name] = changed_at
            run.statuses[status] += 1
            if number in done_by_flow:
                run.done[name] = done_by_flow[number]
    if len(run.done) != len(run.dropped):
        raise RuntimeError(f"{run.name}: {len(run.dropped) - len(run.done)} flows have no report / final status")
    return run


class CpuMeter:
    """CPU seconds spent during a run by the daemon's own process, by its child processes (validation
    pool, deposits' writer) and by this load generator (clients and watcher)."""

    def __init__(self, daemon: RunningDaemon) -> None:
        self._pid = daemon.proc.pid
        self._start = self._now()

    def _now(self) -> tuple[float, float, float]:
        everything, own = cpu_seconds(self._pid), own_cpu_seconds(self._pid)
        return own, everything - own, time.process_time()

    def spent(self) -> dict[str, float]:
        end = self._now()
        return {part: e - s for part, s, e in zip(("daemon", "children", "clients"), self._start, end, strict=True)}


def stop_daemon(daemon: RunningDaemon) -> None:
    """SIGTERM (the config's grace is 20 s); SIGKILL and report the daemon's last lines if it outstays 60 s."""
    daemon.signal(signal.SIGTERM)
    try:
        daemon.wait(60)
    except subprocess.TimeoutExpired:
        daemon.kill9()
        tail = "\n".join(daemon.lines[-30:])
        raise RuntimeError(
            f"the daemon did not stop within 60 s of SIGTERM (killed); its last lines:\n{tail}"
        ) from None


async def e2e_grpc(data: Path, files: dict[str, bytes], clients: int, timeout_s: float) -> E2eRun:
    """The engine's processing rate: gRPC deposit → final status seen on a ``WatchFlows`` stream."""
    daemon = start_daemon(data)
    run, finals, queue = E2eRun("gRPC deposit → final status"), dict[str, float](), list(files)
    try:
        target = str(daemon.ready["grpc"])
        meter = CpuMeter(daemon)

        async def watch(client: AsyncClient) -> None:
            async for event in client.watch_flows(from_start=True):
                if event.final:
                    finals.setdefault(event.flow_number, time.time())
                    if len(finals) == len(files):
                        return

        async def depositor() -> None:
            async with AsyncClient(target, token=TECHNICAL_TOKEN) as client:
                while queue:
                    name = queue.pop()
                    run.dropped[name] = time.time()
                    await client.deposit(files[name], name)

        async with AsyncClient(target, token=TECHNICAL_TOKEN) as watcher:
            watching = asyncio.create_task(watch(watcher))
            await asyncio.gather(*(depositor() for _ in range(clients)))
            await asyncio.wait_for(watching, timeout_s)
        run.cpu = meter.spent()
    finally:
        stop_daemon(daemon)
    return finish(run, data, finals)


async def e2e_sftp(data: Path, key: Path, files: dict[str, bytes], clients: int, timeout_s: float) -> E2eRun:
    """SFTP end to end: upload to ``in/`` → integration report in ``out/`` (polled on disk)."""
    daemon = start_daemon(data)
    run, reports, queue = E2eRun("SFTP drop in in/ → report in out/"), dict[str, float](), list(files)
    out = data / "sftp" / "partners" / PARTNER / "out"
    try:
        port = int(str(daemon.ready["sftp"]).rpartition(":")[2])
        target = Target("fluxdepot serve", port, PARTNER, key, "/in")
        meter = CpuMeter(daemon)

        async def watch() -> None:
            while len(reports) < len(files):
                now = time.time()
                for name in report_names(out):
                    if match := REPORT_NAME.match(name):
                        reports.setdefault(match["flow"], now)
                await asyncio.sleep(OUT_POLL_S)

        async def uploader() -> None:
            async with await target.connect() as conn, conn.start_sftp_client() as sftp:
                while queue:
                    name = queue.pop()
                    run.dropped[name] = time.time()
                    async with sftp.open(f"/in/{name}", "wb") as f:
                        await f.write(files[name])

        watching = asyncio.create_task(watch())
        await asyncio.gather(*(uploader() for _ in range(clients)))
        try:
            await asyncio.wait_for(watching, timeout_s)
        except TimeoutError:
            others = sorted(n for n in report_names(out) if not REPORT_NAME.match(n))[:5]
            raise RuntimeError(
                f"{len(reports)}/{len(files)} reports in out/ after {timeout_s} s; others: {others}"
            ) from None
        run.cpu = meter.spent()
    finally:
        stop_daemon(daemon)
    return finish(run, data, reports)


def report_names(out: Path) -> list[str]:
    """The names in a partner's ``out/`` (one ``scandir``: cheap enough to poll every 10 ms)."""
    try:
        with os.scandir(out) as entries:
            return [entry.name for entry in entries]
    except FileNotFoundError:
        return []


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49] * 1000:6.0f} ms  p99 {cuts[98] * 1000:6.0f} ms"


async def measure_e2e(key: Path, work: Path, flows: int, clients: int, rounds: int) -> None:
    """``rounds`` pairs of runs, gRPC then SFTP, each on a fresh daemon: the ratio of each pair, then their
    median (one pair lasts seconds, and this shared machine's speed drifts more than that between runs)."""
    print(
        f"== end to end through `fluxdepot serve` (demo config, SQLite): {flows} single-invoice UBL flows, "
        f"{clients} clients, {os.cpu_count()} cores, {rounds} rounds",
        flush=True,
    )
    timeout_s = max(120.0, flows / 5)
    grpc_files = e2e_invoices(factory.DEMO_SUPPLIER, "GRPC", flows)
    sftp_files = e2e_invoices(factory.DEMO_SUPPLIER_2, "SFTP", flows)
    ratios: list[float] = []
    for round_ in range(1, rounds + 1):
        base = await e2e_grpc(work / f"e2e-grpc-{round_}", grpc_files, clients, timeout_s)
        ours = await e2e_sftp(work / f"e2e-sftp-{round_}", key, sftp_files, clients, timeout_s)
        print(f" round {round_}")
        for run, seen in ((base, "final status seen"), (ours, "report in out/")):
            statuses = ", ".join(f"{status} {n}" for status, n in sorted(run.statuses.items()))
            print(
                f"  {run.name:<36} {len(run.done)} flows in {run.elapsed:5.1f} s = {run.rate:6.1f} flows/s"
                f"  ({statuses})"
            )
            print(f"    {'drop → ' + seen:<34} {percentiles(run.latencies(run.dropped, run.done))}")
            print(f"    {'drop → final status (store)':<34} {percentiles(run.latencies(run.dropped, run.final))}")
            cpu = "  ".join(f"{part} {seconds / len(run.done) * 1000:5.1f}" for part, seconds in run.cpu.items())
            print(f"    {'CPU ms per flow':<34} {cpu}")
        print(f"    {'final status → report':<34} {percentiles(ours.latencies(ours.final, ours.done))}")
        ratios.append(ours.rate / base.rate)
        print(f"  ratio SFTP end to end / gRPC end to end: {ratios[-1]:.0%}", flush=True)
    print(
        f"ratio over {rounds} rounds: median {statistics.median(ratios):.0%}"
        f" (from {min(ratios):.0%} to {max(ratios):.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large-mb", type=int, default=50)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the intake measures (default 3)")
    parser.add_argument("--parts", default="intake,e2e", help="comma-separated: intake (vs OpenSSH sshd), e2e")
    parser.add_argument("--e2e-flows", type=int, default=1000)
    parser.add_argument("--e2e-clients", type=int, default=8)
    parser.add_argument("--e2e-rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("DATA", "PORT_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", nargs=2, metavar=("ROOT", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), Path(args.serve[1])))
        return
    if args.serve_bare:
        asyncio.run(serve_bare(Path(args.serve_bare[0]), Path(args.serve_bare[1])))
        return
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"intake", "e2e"}:
        parser.error(f"--parts: choose among intake, e2e (got {args.parts!r})")
    work = Path(tempfile.mkdtemp(prefix="fluxdepot-bench-sftp-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        key = work / "client_ed25519"
        shutil.copy(DEMO_KEY, key)
        key.chmod(0o600)
        if "intake" in parts:
            public = DEMO_KEY.with_suffix(".pub").read_text()
            ours, our_port = start_server(work, "fluxdepot")
            procs.append(ours)
            bare, bare_port = start_server(work, "asyncssh")
            procs.append(bare)
            sshd, sshd_port, upload = start_sshd(work, public)
            procs.append(sshd)
            targets = [
                Target("fluxdepot", our_port, "AAA001", key, "/in", ours.pid),
                Target("asyncssh", bare_port, "AAA001", key, "", bare.pid),
                Target("openssh", sshd_port, "root", key, str(upload), sshd.pid),
            ]
            results = asyncio.run(measure(targets, args, work))
            print_table(results)
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            procs.clear()
        if "e2e" in parts:
            asyncio.run(measure_e2e(key, work, args.e2e_flows, args.e2e_clients, args.e2e_rounds))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
