"""The deposits' writer process (``engine.store.sqlite_flow_writer``): new flows are committed by a child
process; its death fails only the batch in flight, a new child takes the next one, and it never
outlives the store or the daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import AlreadyExists, StoreUnavailable
from engine.store.sqlite import SqliteStore
from engine.store.sqlite_flow_writer import FlowWriterProcess, WriterDied, _from_wire, _to_wire
from tests.factory import NEW_FLOW_AT as T0
from tests.factory import new_flow
from tests.procs import running, still_running

EXIT_WAIT_S = 10.0


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await s.open()
    yield s  # type: ignore[misc]
    await s.close()


def test_a_new_flow_crosses_to_the_child_unchanged() -> None:
    new = new_flow(7, tracking_id="t-7")
    assert _from_wire(_to_wire(new)) == new


async def test_new_flows_are_committed_by_a_child_process(store: SqliteStore) -> None:
    flow = await store.create_flow(new_flow(1))
    pid = store._deposits.process.pid
    assert pid is not None and pid != os.getpid() and running(pid)
    assert await store.get_flow(flow.flow_number) == flow  # the record answered is the one stored
    assert (await store.claim("w", now=T0, lease_s=30)).content == new_flow(1).content  # type: ignore[union-attr]


async def test_a_killed_writer_is_replaced_for_the_next_batch(store: SqliteStore) -> None:
    first = await store.create_flow(new_flow(1))
    old = store._deposits.process.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert not await still_running([old], EXIT_WAIT_S)
    for _ in range(100):  # the loop sees the child's socket close
        if not store._deposits.process.running:
            break
        await asyncio.sleep(0.05)
    assert not store._deposits.process.running
    second = await store.create_flow(new_flow(2))
    assert store._deposits.process.pid not in (None, old)
    assert set(await store.all_flow_numbers()) == {first.flow_number, second.flow_number}


async def test_a_writer_dying_mid_batch_fails_that_batch_only(store: SqliteStore) -> None:
    """The child is stopped before it reads the batch, then killed: the depositors waiting get
    StoreUnavailable (never a hang or a traceback), nothing of the batch is stored, and the next
    deposit works."""
    await store.create_flow(new_flow(1))
    pid = store._deposits.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    pending = asyncio.gather(store.create_flow(new_flow(2)), store.create_flow(new_flow(3)), return_exceptions=True)
    await asyncio.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    outcomes = await asyncio.wait_for(pending, EXIT_WAIT_S)
    assert all(isinstance(o, StoreUnavailable) and "writer process ended" in str(o) for o in outcomes), outcomes
    assert len(await store.all_flow_numbers()) == 1
    assert (await store.create_flow(new_flow(4))).file_name == "flow-4.xml"
    assert len(await store.all_flow_numbers()) == 2


async def test_a_batch_committed_before_its_writer_died_is_answered_from_the_store(store: SqliteStore) -> None:
    """When the child dies after COMMIT but before its answer, the store finds the batch's flows by what
    their deposits carried: the depositors get their flows (not an error that would make them deposit
    again), a flow refused for its tracking id stays refused, and a batch never committed stays an error."""
    first = await store.create_flow(new_flow(1, tracking_id="t-1"))
    again = new_flow(2, tracking_id="t-1")
    plain = new_flow(3)
    committed = await asyncio.gather(store.create_flow(plain), store.create_flow(again), return_exceptions=True)
    died = WriterDied("the deposits' writer process ended (exit status -9)")
    outcomes = await store._deposits.committed_anyway([plain, again], died)
    assert outcomes[0] == committed[0] == await store.get_flow(committed[0].flow_number)  # type: ignore[union-attr]
    assert isinstance(outcomes[1], AlreadyExists) and isinstance(committed[1], AlreadyExists)
    assert first.tracking_id == "t-1"
    with pytest.raises(WriterDied):
        await store._deposits.committed_anyway([new_flow(4), new_flow(5)], died)


async def test_ctrl_c_on_the_terminal_does_not_stop_the_writer(store: SqliteStore) -> None:
    """SIGINT reaches a terminal's whole process group: the daemon handles it, the child ignores it."""
    await store.create_flow(new_flow(1))
    pid = store._deposits.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await store.create_flow(new_flow(2))
    assert store._deposits.process.pid == pid


async def test_closing_the_store_ends_the_child(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await store.open()
    await store.create_flow(new_flow(1))
    pid = store._deposits.process.pid
    assert pid is not None
    await store.close()
    assert not running(pid)


async def test_the_child_does_not_outlive_a_killed_daemon(tmp_path: Path) -> None:
    """kill -9 of the process holding the store: its writer sees the socket close and exits."""
    script = f"""
import asyncio, os, signal, sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from engine.store.sqlite import SqliteStore
from tests.factory import new_flow

async def main():
    store = SqliteStore({str(tmp_path / "fluxdepot.db")!r})
    await store.open()
    await store.create_flow(new_flow(1))
    print(store._deposits.process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.split()[0])
    assert not await still_running([child], EXIT_WAIT_S)


async def test_a_writer_that_cannot_open_its_file_says_so(tmp_path: Path) -> None:
    writer = FlowWriterProcess(str(tmp_path / "missing" / "fluxdepot.db"))
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await writer.commit([new_flow(1)])
    await writer.close()


async def test_a_batch_bigger_than_sqlite_spill_threshold_writes_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-row INSERT with triggers keeps a statement journal of the pages it changes that existed
    before it. Past 64 KiB SQLite spills it to a temporary file, created and unlinked in its temp folder
    in every such transaction (~40 more writes per batch of four 20 KB deposits once the store holds a
    few hundred flows); ``temp_store = MEMORY`` keeps it in memory. The temp folder is watched by its
    modification time, which a create or an unlink changes."""
    temp = tmp_path / "sqlite-tmp"
    temp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))  # read by the child at its start
    store = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await store.open()
    try:
        for first in range(0, 500, 50):  # deeper b-trees: a batch then changes more existing pages
            await asyncio.gather(*(store.create_flow(new_flow(i)) for i in range(first, first + 50)))
        before = temp.stat().st_mtime_ns
        batches = store._creates.batches
        batch = [new_flow(i, content=os.urandom(20 * 1024)) for i in range(500, 508)]
        flows = await asyncio.gather(*(store.create_flow(new) for new in batch))
        assert store._creates.batches == batches + 1 and len({f.flow_number for f in flows}) == 8
        assert temp.stat().st_mtime_ns == before and not any(temp.iterdir())
    finally:
        await store.close()
