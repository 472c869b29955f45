"""The store's start-up check under systemd: it reports its progress, and while it reads the daemon asks
systemd for more start-up time (``EXTEND_TIMEOUT_USEC``), so a big store is not killed by
``TimeoutStartSec=`` and restarted forever; a check that stops advancing gets no more time."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

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


def steady(seconds: float) -> Callable[[Callable[[], None]], str]:
    def work(progress: Callable[[], None]) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            progress()
            time.sleep(0.01)
        return "checked"

    return work


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

    def stalled(progress: Callable[[], None]) -> str:
        progress()  # one step, then nothing
        time.sleep(0.6)
        return "late"

    assert asyncio.run(while_advancing(notifier, stalled, status="checking", every_s=0.1)) == "late"
    assert len(received(sock)) <= 1  # at most the first tick, which saw the one step


def test_an_error_of_the_check_is_raised(systemd: tuple[Notifier, socket.socket]) -> None:
    notifier, _ = systemd

    def failing(progress: Callable[[], None]) -> None:
        raise ValueError("damaged")

    with pytest.raises(ValueError, match="damaged"):
        asyncio.run(while_advancing(notifier, failing, status="checking", every_s=0.1))


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
