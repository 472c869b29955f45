"""The store's start-up check and migrations under systemd: they report their progress, and while they
advance the daemon asks systemd for more start-up time (``EXTEND_TIMEOUT_USEC``), so a big store is not
killed by ``TimeoutStartSec=`` and restarted forever; a step that stops advancing gets no more time."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from engine.store import open_store
from engine.store.sqlite_health import FileState, inspect
from gateway.systemd import Notifier, while_advancing


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[Notifier, socket.socket]]:
    """A Notifier talking to a datagram socket of our own, as systemd's ``$NOTIFY_SOCKET``."""
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        yield Notifier(path), sock


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def steady(seconds: float) -> Callable[[Callable[[], None]], Awaitable[str]]:
    """A step in a thread that advances every 10 ms for ``seconds``."""

    def work(progress: Callable[[], None]) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            progress()
            time.sleep(0.01)
        return "checked"

    return lambda progress: asyncio.to_thread(work, progress)


def test_a_check_that_advances_gets_more_time_every_tick(systemd: tuple[Notifier, socket.socket]) -> None:
    notifier, sock = systemd
    result = asyncio.run(while_advancing(notifier, steady(0.6), status="checking the store", every_s=0.1))
    assert result == "checked"
    messages = received(sock)
    assert len(messages) >= 3, messages
    for message in messages:
        extend, status = message.split("\n")
        assert extend == "EXTEND_TIMEOUT_USEC=30000000"
        assert status.startswith("STATUS=checking the store (") and status.endswith(" s)")


def test_a_stalled_check_gets_no_more_time(systemd: tuple[Notifier, socket.socket]) -> None:
    notifier, sock = systemd

    async def stalled(progress: Callable[[], None]) -> str:
        progress()  # one step, then nothing
        await asyncio.sleep(0.6)
        return "late"

    assert asyncio.run(while_advancing(notifier, stalled, status="checking", every_s=0.1)) == "late"
    assert len(received(sock)) <= 1  # at most the first tick, which saw the one step


def test_an_error_of_the_check_is_raised(systemd: tuple[Notifier, socket.socket]) -> None:
    notifier, _ = systemd

    async def failing(progress: Callable[[], None]) -> None:
        raise ValueError("damaged")

    with pytest.raises(ValueError, match="damaged"):
        asyncio.run(while_advancing(notifier, failing, status="checking", every_s=0.1))


def test_a_cancelled_wait_cancels_its_step(systemd: tuple[Notifier, socket.socket]) -> None:
    """The daemon's start cancelled while a step runs: the step is cancelled too, not left running."""
    notifier, _ = systemd
    ended: list[str] = []

    async def endless(progress: Callable[[], None]) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.append("step")

    async def cancel_soon() -> None:
        waiting = asyncio.ensure_future(while_advancing(notifier, endless, status="migrating", every_s=0.1))
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0)  # the step's cancellation runs
        assert ended == ["step"]  # here, not at asyncio.run's end (which cancels whatever is left)

    asyncio.run(cancel_soon())


def test_quick_check_reports_progress_while_it_reads_the_pages(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE flow_sequence (id INTEGER PRIMARY KEY, last_value INTEGER NOT NULL)")
        conn.execute("INSERT INTO flow_sequence VALUES (1, 42)")
        conn.execute("CREATE TABLE flows (n INTEGER, name TEXT)")
        conn.execute("CREATE INDEX flows_name ON flows (name)")
        conn.executemany("INSERT INTO flows VALUES (?, ?)", ((i, f"flow {i:08d}") for i in range(50_000)))
    calls: list[None] = []
    found = inspect(db, lambda: calls.append(None))
    assert found.state is FileState.SOUND and found.last_sequence == 42
    assert len(calls) >= 2
    assert inspect(db).state is FileState.SOUND  # no progress callback: the same check


# 50,000 flows straight into the table (a recursive CTE), enough for an index build to take many VM steps.
_MANY_FLOWS = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
                   deposited_at, status_changed_at, sha256, size_bytes, blob_key)
SELECT i, printf('AAA%07d', i), 'f.xml', 'IN_DP_E1_UBL_INVOICE', 0, 'API', '40483304800022', 'tech:T',
       'REJ', '2026-12-01T00:00:00.000000+00:00', printf('2026-12-01T00:00:%02d.000000+00:00', i % 60),
       '', 1, ''
FROM n
"""


async def test_migrations_report_progress_while_they_build_an_index(tmp_path: Path) -> None:
    """A store of 50,000 flows written before migration 0011 (its two indexes not yet built): opening it
    builds them and calls ``progress`` meanwhile; the migration is then recorded."""
    path = tmp_path / "store.db"
    await (await open_store(f"sqlite:///{path}")).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(_MANY_FLOWS)
        conn.execute("DROP INDEX flows_changed")
        conn.execute("DROP INDEX flows_issuer_changed")
        conn.execute("DELETE FROM schema_migrations WHERE version = 11")
    calls: list[None] = []
    await (await open_store(f"sqlite:///{path}", progress=lambda: calls.append(None))).close()
    assert len(calls) >= 2
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 11").fetchone() == (1,)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"flows_changed", "flows_issuer_changed"} <= indexes
