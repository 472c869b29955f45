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
from collections.abc import Sequence
from dataclasses import fields
from enum import Enum
from typing import Any

from engine.errors import AlreadyExists, EngineError, StoreError, StoreUnavailable
from engine.flownumber import format_flow_number
from engine.model import Channel, FlowRecord, Syntax
from engine.status import FlowStatus
from engine.store import sql_flows
from engine.store.port import NewFlow
from engine.store.rows import new_flow_record, utc
from engine.store.sqlite_database import READER, SqliteDatabase, to_db_time
from engine.store.sqlite_db import connect_writer, insert_rows, translate, write_transaction
from engine.store.sqlite_status import EVENT_ROW, INSERT_EVENTS
from engine.store.writes import chain

READY = "ready"
START_TIMEOUT_S = 30.0  # the child imports its modules and opens the file
_HEADER = struct.Struct("!Q")  # the byte length of the pickle that follows

Outcome = FlowRecord | EngineError


class WriterDied(StoreUnavailable):
    """The child died with a batch in flight, and is known to have exited: whether the batch was
    committed (whole) or not (at all) is for the caller to find out."""


_FIELDS = tuple(f.name for f in fields(NewFlow))


# --- the rows (run in the child) -----------------------------------------------------------------------
# Each table gets ONE multi-row INSERT per chunk (``sqlite_db.insert_rows``): one statement step per table
# instead of one per row (``executemany``) or per JSON element (``json_each``), which cost 10-20% more CPU
# per flow (measured with ``bench.writer``'s inserts).
_INSERT_FLOWS = """INSERT INTO flows (
    seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
    deposited_at, status_changed_at, sha256, size_bytes, blob_key, tracking_id, partner_code
) VALUES """
_INSERT_JOBS = "INSERT INTO jobs (flow_number, available_at, attempts) VALUES "
_INSERT_CONTENTS = "INSERT INTO flow_contents (flow_number, content) VALUES "
_FLOW_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_JOB_ROW = "(?, ?, 0)"
_CONTENT_ROW = "(?, ?)"
# create_flow's group commit isolates a flow with a tracking id, whose insert may be refused alone.
_SAVEPOINT = "SAVEPOINT create_flow"
_ROLLBACK_TO = "ROLLBACK TO create_flow"
_RELEASE = "RELEASE create_flow"
_RESERVE_SEQUENCES = "UPDATE flow_sequence SET last_value = last_value + :count WHERE id = 1 RETURNING last_value"


def insert_new_flows(conn: sqlite3.Connection, batch: Sequence[NewFlow]) -> list[str | AlreadyExists]:
    """Insert a batch inside the caller's transaction; each flow's number, or the refusal of a repeated
    tracking id. Flows without a tracking id go in a few bulk statements, the others one by one."""
    plain = [new for new in batch if new.tracking_id is None]
    bulk = iter(_insert_many(conn, plain) if plain else [])
    return [next(bulk) if new.tracking_id is None else _insert_isolated(conn, new) for new in batch]


def _insert_many(conn: sqlite3.Connection, news: Sequence[NewFlow]) -> list[str]:
    """Numbers, rows, first events, jobs and bytes of flows that cannot conflict (no tracking id)."""
    received = FlowStatus.RECEIVED
    rows = conn.execute(_RESERVE_SEQUENCES, {"count": len(news)}).fetchall()
    first = int(rows[0][0]) - len(news) + 1
    flows: list[Any] = []
    events: list[Any] = []
    jobs: list[Any] = []
    contents: list[Any] = []
    numbers: list[str] = []
    for seq, new in enumerate(news, start=first):
        number = format_flow_number(new.number_prefix, new.syntax.interface_number, seq)
        (e,) = chain(number, None, [(received, None)], at=new.deposited_at, actor=new.depositor, detail=None)
        at = to_db_time(e.at)
        flows.extend((
            seq, number, new.file_name, new.syntax.value, int(new.declared_syntax), new.channel.value,
            new.issuer_siret, new.depositor, e.status, at, at, new.sha256, new.size_bytes, new.blob_key,
            new.tracking_id, new.partner_code,
        ))  # fmt: skip
        events.extend((number, e.seq, e.status, e.event, at, e.actor, e.detail, e.prev_hash, e.hash))
        jobs.extend((number, at))
        if new.content is not None:
            contents.extend((number, new.content))
        numbers.append(number)
    insert_rows(conn, _INSERT_FLOWS, _FLOW_ROW, flows)
    insert_rows(conn, INSERT_EVENTS, EVENT_ROW, events)
    insert_rows(conn, _INSERT_JOBS, _JOB_ROW, jobs, " ON CONFLICT DO NOTHING")
    insert_rows(conn, _INSERT_CONTENTS, _CONTENT_ROW, contents)
    return numbers


def _insert_isolated(conn: sqlite3.Connection, new: NewFlow) -> str | AlreadyExists:
    """One flow with a tracking id, under a savepoint: a repeated id refuses it (the savepoint takes
    its sequence number back), not the batch."""
    conn.execute(_SAVEPOINT)
    try:
        (number,) = _insert_many(conn, [new])
    except sqlite3.IntegrityError as exc:
        conn.execute(_ROLLBACK_TO)
        conn.execute(_RELEASE)
        if "flows.tracking_id" not in str(exc):
            raise
        return AlreadyExists(f"{new.depositor} already deposited a flow with tracking id {new.tracking_id!r}")
    conn.execute(_RELEASE)
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
        with write_transaction(conn):
            outcomes = insert_new_flows(conn, batch)
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


class DepositWriter:
    """The store's side of the deposits' writer: ``commit`` writes one group-committed batch
    (``engine.store.group_commit``) under the database's write lock (``SqliteDatabase.writing_elsewhere``)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self.process = FlowWriterProcess(db.path)

    async def commit(self, batch: Sequence[NewFlow]) -> list[FlowRecord | BaseException]:
        """One durable transaction for ``batch``, one outcome per flow. ``StoreUnavailable`` when the child
        died with it in flight and nothing of it was committed."""
        async with self._db.writing_elsewhere():
            try:
                return list(await self.process.commit(batch))
            except WriterDied as died:
                return await self.committed_anyway(batch, died)

    async def committed_anyway(self, batch: Sequence[NewFlow], died: WriterDied) -> list[FlowRecord | BaseException]:
        """The outcomes of a batch whose writer died before answering, if its transaction committed
        (then every flow of it is in, but those refused for a repeated tracking id); else ``died`` is
        raised again: nothing of the batch was recorded. The child has exited: nothing commits late."""
        found: list[FlowRecord | None] = []
        async with self._db.read() as conn:
            for new in batch:
                params = {
                    "depositor": new.depositor,
                    "issuer_siret": new.issuer_siret,
                    "deposited_at": new.deposited_at,
                    "sha256": new.sha256,
                    "file_name": new.file_name,
                }
                rows = await conn.rows(sql_flows.FIND_DEPOSITED, params)
                found.append(READER.flow(rows[0]) if rows else None)
        if all(flow is None for flow in found):
            raise died
        refused = AlreadyExists("a flow with this tracking id was deposited first")
        return [flow if flow is not None else refused for flow in found]

    async def close(self) -> None:
        await self.process.close()


def main(argv: list[str]) -> int:
    path, fd = argv
    serve(path, socket.socket(fileno=int(fd)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
