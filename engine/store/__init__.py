"""Storage behind a port: ``engine.store.port.Store``; SQLite by default, PostgreSQL for scale-out."""

from __future__ import annotations

from engine.store.port import Claim, NewFlow, Store


async def open_store(url: str) -> Store:
    """Open (and migrate) the store a URL names: ``sqlite:///path/to/db`` (default)."""
    if url.startswith("sqlite:"):
        from engine.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite:").removeprefix("//")
        store = SqliteStore(path)
        await store.open()
        return store
    raise ValueError(f"unsupported store URL {url!r}: expected sqlite:///PATH")


__all__ = ["Claim", "NewFlow", "Store", "open_store"]
