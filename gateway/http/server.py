"""uvicorn inside the daemon's own event loop, started and stopped in the daemon's order (STYLE rule 14).

``uvicorn.Server.serve`` would install its own SIGINT/SIGTERM handlers over the daemon's, so the server is
driven step by step instead: the socket is bound here (a bind failure is the daemon's one-line start-up
error, exit 69), ``startup`` serves it, ``main_loop`` keeps the Date header fresh until ``close`` asks it to
end, and ``stop`` lets in-flight requests finish within the grace before the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default)
BACKLOG = 512


@dataclass(frozen=True)
class HttpTls:
    cert: Path
    key: Path


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def bind(listen: str) -> socket.socket:
    """A listening socket on ``listen`` (``HOST:PORT``, IPv6 in brackets); raises ``OSError``."""
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (an accepted socket
    # inherits its listener's); with proto 0, Nagle held every keep-alive answer ~40 ms (bench.http).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; not port sharing
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.set_inheritable(False)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """One uvicorn server on one socket (see the module docstring)."""

    def __init__(self, app: Any, *, tls: HttpTls | None = None, grace_s: float = 20.0) -> None:
        config = uvicorn.Config(
            app,
            lifespan="off",  # the daemon owns start and stop
            log_config=None,  # logs go through the daemon's structlog configuration
            access_log=False,  # gateway.http.middleware logs one line per request, with its request id
            http="httptools",
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For is not trusted: rate limits use the peer address
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=grace_s,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )
        config.load()  # reads the TLS files: an OSError here names the file
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start/stop lines say nothing new
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        self._socket: socket.socket | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self, listen: str) -> int:
        """Serve on ``listen``; returns the bound port. Raises ``OSError`` when it cannot bind."""
        self._socket = bind(listen)
        await self._server.startup(sockets=[self._socket])
        self._loop_task = asyncio.create_task(self._server.main_loop())
        return int(self._socket.getsockname()[1])

    def close(self) -> None:
        """Stop accepting connections (the first step of the daemon's shutdown)."""
        self._server.should_exit = True
        for server in getattr(self._server, "servers", []):
            server.close()

    async def stop(self, grace_s: float) -> None:
        """Let in-flight requests finish within ``grace_s``, then close every connection."""
        self.close()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._server.started:
            self._server.config.timeout_graceful_shutdown = grace_s
            await self._server.shutdown(sockets=[self._socket] if self._socket else None)
