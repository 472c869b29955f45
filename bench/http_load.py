"""A lean HTTP/1.1 load generator for deposits: asyncio streams, one keep-alive connection per worker, each
request bytes built from pre-encoded pieces (request line, headers with ``Content-Length``, a multipart body)
and each answer read as status line, headers and a ``Content-Length`` body.

httpx, pure Python, spends several times more CPU per call than grpc's C-core client, in the same 2 cores as
the server; this one spends less (bench.http prints each load's client CPU per call beside the server's).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

BOUNDARY = b"fluxdepot-bench-7d1c0b5e"
AFNOR_PATH = "/v1/flows"
API_PATH = "/api/v1/flows"


@dataclass(frozen=True)
class Encoder:
    """Pre-encoded pieces of one kind of deposit request; ``request(content, i)`` joins them around a file."""

    head: bytes  # request line and headers up to "Content-Length: "
    before: bytes  # the multipart body before the file's bytes (with the part headers of the file)
    after: bytes  # the closing boundary

    def request(self, content: bytes) -> bytes:
        length = len(self.before) + len(content) + len(self.after)
        return b"".join((self.head, str(length).encode(), b"\r\n\r\n", self.before, content, self.after))


def _head(path: str, port: int, token: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\nContent-Length: "
    ).encode()


def _field(name: str, value: bytes, content_type: str | None = None) -> bytes:
    typed = f"\r\nContent-Type: {content_type}" if content_type else ""
    return (
        b"--"
        + BOUNDARY
        + f'\r\nContent-Disposition: form-data; name="{name}"{typed}\r\n\r\n'.encode()
        + value
        + b"\r\n"
    )


def _file_part_head(file_name: str) -> bytes:
    return (
        b"--"
        + BOUNDARY
        + f'\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/xml\r\n\r\n".encode()
    )


def afnor_encoder(port: int, token: str) -> Encoder:
    """``POST /v1/flows``: ``flowInfo`` (application/json, ``{"flowSyntax": "UBL"}``) then ``file``, as the
    AFNOR Flow Service expects."""
    info = _field("flowInfo", json.dumps({"flowSyntax": "UBL"}).encode(), "application/json")
    return Encoder(
        _head(AFNOR_PATH, port, token), info + _file_part_head("invoice.xml"), b"\r\n--" + BOUNDARY + b"--\r\n"
    )


def api_encoder(port: int, token: str) -> Encoder:
    """``POST /api/v1/flows``: ``syntax`` then ``file``."""
    syntax = _field("syntax", b"IN_DP_E1_UBL_INVOICE")
    return Encoder(
        _head(API_PATH, port, token), syntax + _file_part_head("invoice.xml"), b"\r\n--" + BOUNDARY + b"--\r\n"
    )


class HttpError(RuntimeError):
    """An answer other than the one expected (the load stops: a benchmark of errors measures nothing)."""


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, expect: int) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
            break
    body = await reader.readexactly(length) if length else b""
    if status != expect:
        line = head.split(b"\r\n", 1)[0].decode()
        raise HttpError(f"{line}: {body[:500]!r}")


@dataclass(frozen=True)
class Load:
    """The calls of one timed load: count, seconds, each call's latency in ms, and the CPU seconds the
    server (``meter``) and this process spent meanwhile."""

    calls: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float
    client_cpu_s: float


async def drive(
    port: int,
    encoder: Encoder,
    content: Callable[[int], bytes],
    concurrency: int,
    seconds: float,
    *,
    meter: Callable[[], float],
    warm_up: int = 20,
    expect: int = 202,
) -> Load:
    """``concurrency`` keep-alive connections, each sending one request after the other for ``seconds``
    (after ``warm_up`` calls spread over them); every answer must have status ``expect``. ``meter()``:
    the server's CPU seconds so far."""
    counter = iter(range(10**9))
    latencies: list[float] = []
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    try:
        for n in range(max(warm_up, concurrency)):
            reader, writer = connections[n % concurrency]
            await _exchange(reader, writer, encoder.request(content(next(counter))), expect)
        deadline = time.perf_counter() + seconds

        async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while time.perf_counter() < deadline:
                request = encoder.request(content(next(counter)))
                start = time.perf_counter()
                await _exchange(reader, writer, request, expect)
                latencies.append((time.perf_counter() - start) * 1000)

        server, client, start = meter(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(r, w) for r, w in connections))
        elapsed = time.perf_counter() - start
        return Load(len(latencies), elapsed, latencies, meter() - server, time.process_time() - client)
    finally:
        for _, writer in connections:
            writer.close()
