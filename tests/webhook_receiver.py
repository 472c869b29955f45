"""A webhook receiver for tests and the benchmark: a plain HTTP/1.1 server on loopback (asyncio streams)
that records each POST (headers, body) and answers ``status`` after ``delay_s``. ``stop`` closes the
listening socket and every open connection, so the receiver is really down; ``start(port)`` brings it back
on the same port."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    status: int = 200
    delay_s: float = 0.0
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, n: int, timeout_s: float = 20.0) -> list[Received]:
        """Until ``n`` requests were answered with 2xx."""
        async with asyncio.timeout(timeout_s):
            while sum(1 for r in self.requests if 200 <= r.status < 300) < n:
                self.arrived.clear()
                await self.arrived.wait()
        return [r for r in self.requests if 200 <= r.status < 300]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                status = self.status
                self.requests.append(Received(headers, body, status))
                self.arrived.set()
                writer.write(f"HTTP/1.1 {status} Answer\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
