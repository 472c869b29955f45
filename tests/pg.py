"""PostgreSQL for the tests: a server, and a fresh, migrated database per test.

* ``FLUXDEPOT_TEST_PG_URL`` names a server to use (CI starts one, ``.ci/start-postgres.sh``); its role
  must be allowed to create databases. Otherwise a private cluster is started once per session in a temp
  folder (``initdb``/``pg_ctl`` from PATH or ``/usr/lib/postgresql/*/bin``, run as the ``postgres`` user
  when we are root), on a free loopback port, with fsync off and trust authentication, and removed at exit.
* Each test gets a new database copied from a template migrated once (``CREATE DATABASE … TEMPLATE``).
* When no server can be had at all, PostgreSQL tests are skipped with the reason.

``PgCluster`` is also used directly by tests that stop and restart a server of their own.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ENV_URL = "FLUXDEPOT_TEST_PG_URL"
TEMPLATE = "fluxdepot_test_template"
_counter = itertools.count(1)


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster in a temp folder (``start``/``stop``/``restart``/``remove``)."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fluxdepot-pg-")))
    port: int = field(default_factory=free_port)
    user: str | None = None  # the OS user running the server (``postgres`` when we are root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        initdb = find_bin("initdb")
        if initdb is None:
            raise RuntimeError("initdb not found (install the postgresql package)")
        if os.geteuid() == 0:
            self.user = "postgres"
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError as exc:
                raise RuntimeError("running as root and there is no 'postgres' user") from exc
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        done = self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self, *, durable: bool = False) -> None:
        """Start the server; ``durable`` keeps fsync and synchronous commits on (benchmarks)."""
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl is None:
            raise RuntimeError("pg_ctl not found")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200 -c shared_buffers=256MB"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        done = self._run(pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")
        if done.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log}")

    def stop(self, mode: str = "fast") -> None:
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl and self.data.exists():
            self._run(pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PgServer:
    """The session's server and its per-test databases."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.skip_reason: str | None = None
        self._cluster: PgCluster | None = None
        self._template_ready = False
        self._created: list[str] = []
        self._lock: asyncio.Lock | None = None

    def ensure(self) -> str:
        """The server URL, starting a private cluster on first use; skips the test when impossible."""
        if self.url is None and self.skip_reason is None:
            env = os.environ.get(ENV_URL)
            if env:
                self.url = env
            else:
                cluster = PgCluster()
                try:
                    cluster.init()
                    cluster.start()
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    cluster.remove()
                    self.skip_reason = f"PostgreSQL unavailable: {exc}"
                else:
                    self._cluster = cluster
                    self.url = cluster.url
                    atexit.register(cluster.remove)
        if self.url is None:
            pytest.skip(self.skip_reason or "PostgreSQL unavailable")
        return self.url

    async def _admin(self) -> Any:
        return await asyncpg.connect(self.ensure(), timeout=10)

    async def _ensure_template(self) -> None:
        if self._template_ready:
            return
        from engine.store.postgres import PostgresStore

        conn = await self._admin()
        try:
            await conn.execute("DROP DATABASE IF EXISTS " + TEMPLATE + " WITH (FORCE)")
            await conn.execute("CREATE DATABASE " + TEMPLATE)
        finally:
            await conn.close()
        store = PostgresStore(with_database(self.ensure(), TEMPLATE), pool_min=1, pool_max=1)
        await store.open()
        await store.close()
        self._template_ready = True

    async def create_database(self, *, migrated: bool = True) -> str:
        """A new database (migrated from the template, or empty); earlier test databases are dropped."""
        if migrated:
            await self._ensure_template()
        name = f"fluxdepot_test_{os.getpid()}_{next(_counter)}"
        conn = await self._admin()
        try:
            kept: list[str] = []
            for old in self._created:
                try:
                    await conn.execute("DROP DATABASE IF EXISTS " + old + " WITH (FORCE)")
                except asyncpg.InsufficientPrivilegeError:
                    # A backend of another role (an autovacuum worker) is in it and our role may not end
                    # it: the database is dropped on a later call instead of failing this test.
                    kept.append(old)
            self._created[:] = kept
            template = TEMPLATE if migrated else "template0"
            await conn.execute("CREATE DATABASE " + name + " TEMPLATE " + template)
        finally:
            await conn.close()
        self._created.append(name)
        return with_database(self.ensure(), name)


SERVER = PgServer()  # one per test session (a process); started lazily by the first PostgreSQL test


def to_positional(query: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """Rewrite ``:name`` parameters (the contract suite's raw SQL) as asyncpg's ``$n``."""
    names: list[str] = []

    def repl(m: Any) -> str:
        names.append(m.group(1))
        return f"${len(names)}"

    import re

    text = re.sub(r"(?<!:):([a-zA-Z_]\w*)", repl, query)
    return text, [params[n] for n in names]


async def execute_raw(url: str, query: str, params: dict[str, Any]) -> None:
    text, args = to_positional(query, params)
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(text, *args)
    finally:
        await conn.close()


def wait_until_listening(port: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


def store_factory_parts(*, pool_min: int = 1, pool_max: int = 4) -> tuple[Any, Any]:
    """``(open, execute_raw)`` for a store-contract factory: stores on one fresh database, created at the
    first ``open`` (several stores on it stand for several daemons)."""
    from engine.store.postgres import PostgresStore

    SERVER.ensure()  # skip now, at fixture time, when there is no server
    url: list[str] = []
    lock = asyncio.Lock()

    async def database() -> str:
        async with lock:
            if not url:
                url.append(await SERVER.create_database())
        return url[0]

    async def open_store() -> Any:
        store = PostgresStore(await database(), pool_min=pool_min, pool_max=pool_max)
        await store.open()
        return store

    async def raw(query: str, params: dict[str, Any]) -> None:
        await execute_raw(await database(), query, params)

    return open_store, raw
