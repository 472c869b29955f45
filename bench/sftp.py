"""SFTP intake speed: fluxdepot's asyncssh server against OpenSSH's own ``sshd`` + ``internal-sftp``.

Both servers run as separate processes on loopback ports in the same run and are driven by the same
clients: asyncssh's client (AES-GCM, the server's largest write size) for every figure, and the OpenSSH
``sftp`` program for the large file. OpenSSH writes to a temp folder (no fsync: the physical limit of
SFTP here); fluxdepot turns each closed upload into a durable deposit (blob fsynced, flow committed)
before acknowledging it.

    .venv/bin/python -m bench.sftp [--large-mb 50] [--small 2000] [--logins 100]

Run as root (``sshd`` needs it); ``apt-get install -y openssh-server`` when ``/usr/sbin/sshd`` is missing.
Targets: ≥ 60% of OpenSSH's MB/s on the large file, ≥ 50% of its files/s on small files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

REPO = Path(__file__).resolve().parent.parent
DEMO_KEY = REPO / "config" / "demo" / "AAA001_ed25519"
DEMO_DIRECTORY = REPO / "config" / "demo" / "directory.toml"
SSHD = Path("/usr/sbin/sshd")
CIPHER = "aes128-gcm@openssh.com"
MiB = 1024 * 1024


# --- the fluxdepot server, in its own process -------------------------------------------------------


async def serve(data: Path, port_file: Path) -> None:
    """Run fluxdepot's SFTP intake (store, blobs, deposit service, outbox) until SIGTERM."""
    from engine import ENGINE_VERSION
    from engine.blobs import BlobStore
    from engine.deposit import DepositService
    from engine.directory_file import load_directory
    from engine.model import Limits
    from engine.store import open_store
    from gateway.outbox import OutboxWriter
    from gateway.sftp_paths import PartnerFolders
    from gateway.sftp_server import SftpSettings, start_sftp_server

    store = await open_store(f"sqlite:///{data / 'fluxdepot.db'}")
    await store.import_directory(load_directory(DEMO_DIRECTORY))
    limits = Limits(max_flow_bytes=128 * MiB)
    deposits = DepositService(store, BlobStore(data / "blobs"), limits)
    outbox = OutboxWriter(store, PartnerFolders(data / "sftp"), engine_version=ENGINE_VERSION)
    settings = SftpSettings(max_flow_bytes=limits.max_flow_bytes, quota_files=100_000, quota_bytes=1 << 40)
    server, port = await start_sftp_server(store, deposits, outbox, settings, "127.0.0.1:0")
    port_file.write_text(str(port))  # noqa: ASYNC240 - once, at start, before any client
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    await store.close()


def start_fluxdepot(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    data = work / "fluxdepot"
    data.mkdir()
    port_file = work / "fluxdepot.port"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sftp", "--serve", str(data), str(port_file)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the fluxdepot SFTP server did not start")
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
    def __init__(self, name: str, port: int, user: str, key: Path, upload_dir: str) -> None:
        self.name, self.port, self.user, self.key, self.upload_dir = name, port, user, key, upload_dir

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


async def measure(targets: list[Target], args: argparse.Namespace, work: Path) -> dict[str, dict[str, float]]:
    large = work / "large.xml"
    large.write_bytes(os.urandom(args.large_mb * MiB))
    payload = os.urandom(10 * 1024)
    results: dict[str, dict[str, float]] = {}
    for target in targets:
        r = results.setdefault(target.name, {})
        await large_asyncssh(target, large)  # warm-up (page cache, first deposit)
        r["large MiB/s (asyncssh client)"] = args.large_mb / await large_asyncssh(target, large)
        r["large MiB/s (OpenSSH sftp)"] = args.large_mb / await large_openssh(target, large)
        r["small files/s, 1 client"] = args.small / await small_files(target, args.small, 1, payload)
        r["small files/s, 8 clients"] = args.small / await small_files(target, args.small, 8, payload)
        r["logins/s"] = args.logins / await logins(target, args.logins)
    return results


def print_table(results: dict[str, dict[str, float]]) -> None:
    ours, base = results["fluxdepot"], results["openssh"]
    print(f"{'measure':<32} {'fluxdepot':>10} {'openssh':>10} {'ratio':>7}")
    for name, value in ours.items():
        print(f"{name:<32} {value:>10.1f} {base[name]:>10.1f} {value / base[name]:>6.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large-mb", type=int, default=50)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--serve", nargs=2, metavar=("DATA", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), Path(args.serve[1])))
        return
    work = Path(tempfile.mkdtemp(prefix="fluxdepot-bench-sftp-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        key = work / "client_ed25519"
        shutil.copy(DEMO_KEY, key)
        key.chmod(0o600)
        public = DEMO_KEY.with_suffix(".pub").read_text()
        ours, our_port = start_fluxdepot(work)
        procs.append(ours)
        sshd, sshd_port, upload = start_sshd(work, public)
        procs.append(sshd)
        targets = [
            Target("fluxdepot", our_port, "AAA001", key, "/in"),
            Target("openssh", sshd_port, "root", key, str(upload)),
        ]
        results = asyncio.run(measure(targets, args, work))
        print_table(results)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
