"""The network faces the daemon starts, built from the engine (gRPC, SFTP, outbox writer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.daemon import Engine, Listener


async def build_listeners(engine: Engine) -> list[Listener]:
    return []
