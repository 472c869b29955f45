"""New flows are inserted by a child process: the deposits' writer, with its own SQLite connection.

Why a process: a new flow's rows (the flow and its indexes, first event and feed entry, job, bytes,
counters) cost ~0.3 ms of CPU. Written from a thread of the daemon, every statement of a batch had to
take the GIL back from the busy event loop (gRPC, SFTP), and every depositor waiting on the batch paid
for it: the batch's wall time was twice its CPU time. The child has its own GIL; the daemon only
pickles the batch and reads the answer (figures in README "Benchmarks").

The exchange runs over a socket pair private to the two processes (so ``pickle`` carries only what the
daemon itself wrote): length-prefixed pickles. The child says ``READY`` once its connection is open,
then answers each batch (a list of ``NewFlow`` as plain tuples) with one outcome per flow (its number,
from which the daemon builds the record, or the ``engine.errors`` error concerning that flow only) or
with the whole transaction's failure (an ``engine.errors`` error and the driver error that caused it).
It answers only after ``COMMIT`` with ``synchronous=FULL``: an answer means durable.

Invariants:

* One batch at a time: the store holds its write lock around each exchange, so the child's
  transaction never waits for the daemon's own writers.
* The child exits when its socket closes: at the store's close, or when the daemon dies (even by
  ``kill -9``). It ignores SIGINT and SIGTERM, which are the daemon's to handle (a terminal's Ctrl-C
  reaches the whole process group; systemd's ``KillMode=mixed`` sends SIGTERM to the daemon only).
* If the child dies, the batch in flight fails with ``WriterDied`` once the child has exited (its
  flows are all committed or none: one transaction; ``SqliteStore`` looks which) and the next batch
  starts a new child.

    python -m engine.store.sqlite_flow_writer DB_PATH SOCKET_FD   (started by ``FlowWriterProcess``)
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
import sqlite3
import struct
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import fields
from enum import Enum
from typing import Any

from engine.audit import GENESIS, event_hash
from engine.errors import AlreadyExists, EngineError, StoreError, StoreUnavailable
from engine.flownumber import format_flow_number
from engine.model import Channel, FlowRecord, Syntax
from engine.status import FlowStatus
from engine.store import sqlite_sql as sql
from engine.store.port import NewFlow
from engine.store.rows import new_flow_record
from engine.store.sqlite_db import connect_writer, translate
from engine.store.sqlite_rows import to_db_time, utc

READY = "ready"
START_TIMEOUT_S = 30.0  # the child imports its modules and opens the file
_HEADER = struct.Struct("!Q")  # the byte length of the pickle that follows

Outcome = FlowRecord | EngineError


class WriterDied(StoreUnavailable):
    """The child died with a batch in flight, and is known to have exited: whether the batch was
    committed (whole) or not (at all) is for the caller to find out."""


_FIELDS = tuple(f.name for f in fields(NewFlow))


# --- the rows (run in the child) -----------------------------------------------------------------------


def insert_new_flows(conn: sqlite3.Connection, batch: Sequence[NewFlow]) -> list[str | AlreadyExists]:
    """Insert a batch inside the caller's transaction; each flow's number, or the refusal of a repeated
    tracking id. Flows without a tracking id go in a few bulk statements, the others one by one."""
    plain = [new for new in batch if new.tracking_id is None]
    bulk = iter(_insert_many(conn, plain) if plain else [])
    return [next(bulk) if new.tracking_id is None else _insert_isolated(conn, new) for new in batch]


def _insert_rows(conn: sqlite3.Connection, statement: Callable[[int], str], values: list[Any], width: int) -> None:
    """Insert the rows laid out one after the other in ``values`` (``width`` values each), at most
    ``sql.ROWS_PER_INSERT`` rows per ``statement(row count)``."""
    step = width * sql.ROWS_PER_INSERT
    for start in range(0, len(values), step):
        chunk = values[start : start + step]
        conn.execute(statement(len(chunk) // width), chunk)


def _insert_many(conn: sqlite3.Connection, news: Sequence[NewFlow]) -> list[str]:
    """Numbers, rows, first events, jobs and bytes of flows that cannot conflict (no tracking id).

    Each table gets ONE multi-row INSERT per chunk, not ``executemany``: one statement step per table
    instead of one per row."""
    received = FlowStatus.RECEIVED.code
    rows = conn.execute(sql.RESERVE_SEQUENCES, {"count": len(news)}).fetchall()
    first = int(rows[0][0]) - len(news) + 1
    flows: list[Any] = []
    events: list[Any] = []
    jobs: list[Any] = []
    contents: list[Any] = []
    numbers: list[str] = []
    for seq, new in enumerate(news, start=first):
        number = format_flow_number(new.number_prefix, new.syntax.interface_number, seq)
        at = utc(new.deposited_at)
        stored_at = to_db_time(at)
        flows.extend(sql.flow_values(seq, number, new, received, stored_at))
        digest = event_hash(GENESIS, number, 1, received, "", at.isoformat(), new.depositor, None)
        events.extend((number, 1, received, None, stored_at, new.depositor, None, GENESIS, digest))
        jobs.extend((number, stored_at))
        if new.content is not None:
            contents.extend((number, new.content))
        numbers.append(number)
    _insert_rows(conn, sql.insert_flows, flows, sql.FLOW_WIDTH)
    _insert_rows(conn, sql.insert_events, events, sql.EVENT_WIDTH)
    _insert_rows(conn, sql.ensure_jobs, jobs, sql.JOB_WIDTH)
    _insert_rows(conn, sql.insert_contents, contents, sql.CONTENT_WIDTH)
    return numbers


def _insert_isolated(conn: sqlite3.Connection, new: NewFlow) -> str | AlreadyExists:
    """One flow with a tracking id, under a savepoint: a repeated id refuses it (the savepoint takes
    its sequence number back), not the batch."""
    conn.execute(sql.SAVEPOINT_CREATE)
    try:
        (number,) = _insert_many(conn, [new])
    except sqlite3.IntegrityError as exc:
        conn.execute(sql.ROLLBACK_TO_CREATE)
        conn.execute(sql.RELEASE_CREATE)
        if "flows.tracking_id" not in str(exc):
            raise
        return AlreadyExists(f"{new.depositor} already deposited a flow with tracking id {new.tracking_id!r}")
    conn.execute(sql.RELEASE_CREATE)
    return number


# --- the child ---------------------------------------------------------------------------------------


def _frames(message: object) -> tuple[bytes, bytes]:
    """The header and the body of one message (two writes: the body is not copied once more)."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)), body


def _to_wire(new: NewFlow) -> tuple[Any, ...]:
    """A new flow as a tuple of plain values: pickled by C code alone, unlike a dataclass of enums."""
    return tuple(v.value if isinstance(v, Enum) else v for v in (getattr(new, name) for name in _FIELDS))


def _from_wire(values: tuple[Any, ...]) -> NewFlow:
    kwargs = dict(zip(_FIELDS, values, strict=True))
    kwargs["syntax"] = Syntax(kwargs["syntax"])
    kwargs["channel"] = Channel(kwargs["channel"])
    return NewFlow(**kwargs)


def _read_frame(stream: Any) -> object | None:
    """The next message from a blocking binary stream; ``None`` at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    body = stream.read(length)
    if len(body) < length:
        return None
    message: object = pickle.loads(body)  # noqa: S301 - written by the daemon that started us, over a private socket
    return message


def _commit_batch(
    conn: sqlite3.Connection, wire: Sequence[tuple[Any, ...]]
) -> list[str | AlreadyExists] | tuple[EngineError, sqlite3.Error | None]:
    """One outcome per flow, or the transaction's failure with the driver error that caused it (a
    pickled exception loses its ``__cause__``: the daemon chains it again)."""
    try:
        batch = [_from_wire(values) for values in wire]
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcomes = insert_new_flows(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. after SQLITE_FULL): that error is fine.
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        return translate(exc), exc
    except EngineError as exc:
        return exc, None
    except Exception as exc:  # the daemon gets it as a store error, not as a dead child
        return StoreError(f"the deposits' writer failed: {exc!r}"), None
    return outcomes


def serve(path: str, sock: socket.socket) -> None:
    """The child's loop: open the file, say READY, then commit each batch received until end of stream."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stream = sock.makefile("rb")
    try:
        conn = connect_writer(path)
    except sqlite3.Error as exc:
        sock.sendall(b"".join(_frames(StoreUnavailable(f"the deposits' writer cannot open {path}: {exc}"))))
        return
    sock.sendall(b"".join(_frames(READY)))
    try:
        while (wire := _read_frame(stream)) is not None:
            sock.sendall(b"".join(_frames(_commit_batch(conn, wire))))  # type: ignore[arg-type]
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon went away: nothing is waiting for the answer
    finally:
        conn.close()


# --- the daemon's side -------------------------------------------------------------------------------


class _Replies(asyncio.Protocol):
    """The daemon's end of the socket: each complete reply resolves the waiting future in the very
    loop iteration that read it (a stream reader would cost a task wake-up more per batch)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[object] | None = None
        self.lost = False  # the child closed its end (it died): the next batch needs a new child
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def expect(self) -> asyncio.Future[object]:
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                return
            message = pickle.loads(self._buffer[_HEADER.size : end])  # noqa: S301 - our child, a private socket
            del self._buffer[:end]
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("the deposits' writer closed its socket"))


class FlowWriterProcess:
    """The daemon's handle on the child: started on the first batch, restarted after it died."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._proc: asyncio.subprocess.Process | None = None
        self._replies: _Replies | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """A child is up, as far as the event loop has seen (a death shows once its socket closes: a
        batch sent before that fails like one in flight)."""
        return self._replies is not None and not self._replies.lost

    async def commit(self, batch: Sequence[NewFlow]) -> list[Outcome]:
        """Insert ``batch`` in one durable transaction of the child; one outcome per flow. The caller
        holds the store's write lock (one batch at a time)."""
        if self._replies is None or self._replies.lost:
            await self._discard()  # a child that died between batches
            self._replies = await self._start()
        replies = self._replies
        assert replies.transport is not None
        received = [utc(new.deposited_at) for new in batch]  # refuses a naive time before anything is written
        answer = replies.expect()
        try:
            for part in _frames([_to_wire(new) for new in batch]):
                replies.transport.write(part)
            reply = await answer
        except ConnectionError as exc:
            status = await self._discard()  # waits for its exit: it commits nothing more
            raise WriterDied(f"the deposits' writer process ended (exit status {status})") from exc
        except asyncio.CancelledError:
            # The reply would answer the next batch: end this child (its transaction commits whole or
            # not at all; the caller is gone either way) and start afresh.
            await asyncio.shield(self._discard())
            raise
        if isinstance(reply, tuple):
            error, cause = reply
            raise error from cause
        # Each record as a re-read would give it (the store keeps the deposit time to the microsecond).
        return [
            outcome if isinstance(outcome, EngineError) else new_flow_record(outcome, new, at)
            for outcome, new, at in zip(reply, batch, received, strict=True)  # type: ignore[call-overload]
        ]

    async def _start(self) -> _Replies:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                self._path,
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                # The child imports this module as the daemon did, wherever that came from.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError as exc:
            ours.close()
            raise StoreUnavailable(f"the deposits' writer cannot be started: {exc}") from exc
        finally:
            theirs.close()
        replies = _Replies()
        hello = replies.expect()
        await asyncio.get_running_loop().connect_accepted_socket(lambda: replies, ours)
        self._replies = replies  # for _discard below
        try:
            message = await asyncio.wait_for(hello, START_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            status = await self._discard()
            raise StoreUnavailable(f"the deposits' writer did not start (exit status {status})") from exc
        if message != READY:
            await self._discard()
            raise (
                message if isinstance(message, EngineError) else StoreUnavailable("the deposits' writer did not start")
            )
        return replies

    async def _discard(self) -> int | None:
        """Forget a child that failed: kill it if it still runs; its exit status."""
        return await self._end(kill=True)

    async def close(self) -> None:
        """End the child: it sees end of stream, closes its connection and exits."""
        await self._end(kill=False)

    async def _end(self, *, kill: bool) -> int | None:
        """Close our end of the socket and wait for the child's exit (killed first if ``kill`` and it still
        runs); its exit status, None when there was no child."""
        proc, replies = self._proc, self._replies
        self._proc = self._replies = None
        if replies is not None and replies.transport is not None:
            replies.transport.close()
        if proc is None:
            return None
        if kill and proc.returncode is None:
            proc.kill()
        return await proc.wait()


def main(argv: list[str]) -> int:
    path, fd = argv
    serve(path, socket.socket(fileno=int(fd)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
