"""Storage behind a port: ``engine.store.port.Store``; SQLite by default, PostgreSQL for scale-out."""

from __future__ import annotations

from collections.abc import Callable

from engine.store.port import Claim, NewFlow, Store


def sqlite_path(url: str) -> str:
    """``sqlite:///relative/file.db`` → ``relative/file.db``; ``sqlite:////abs/file.db`` → ``/abs/file.db``."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"a SQLite store URL is sqlite:///PATH, not {url!r}")
    return url.removeprefix("sqlite:///")


async def open_store(
    url: str, *, pool_min: int = 2, pool_max: int = 10, progress: Callable[[], None] | None = None
) -> Store:
    """Open (and migrate) the store a URL names: ``sqlite:///path/to/db`` (default), or
    ``postgresql://user@host:port/db`` (scale-out; ``pool_min``/``pool_max`` size its connection pool).
    ``progress`` is called while SQLite migrations run (the daemon asks systemd for time meanwhile)."""
    if url.startswith(("postgresql://", "postgres://")):
        from engine.store.postgres import PostgresStore

        pg = PostgresStore(url, pool_min=pool_min, pool_max=pool_max)
        await pg.open()
        return pg
    if url.startswith("sqlite:"):
        from engine.store.sqlite import SqliteStore

        store = SqliteStore(sqlite_path(url))
        await store.open(progress)
        return store
    raise ValueError(f"unsupported store URL {url!r}: expected sqlite:///PATH or postgresql://…")


__all__ = ["Claim", "NewFlow", "Store", "open_store", "sqlite_path"]
