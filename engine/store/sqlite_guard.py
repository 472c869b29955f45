"""The embedded store refuses to start damaged, and flow numbers never go back.

Before the SQLite store opens, ``check_before_open`` reads its file (``engine.store.sqlite_health``):

* a damaged file (bad header, ``quick_check`` failure, no flow sequence) is refused;
* a missing or empty file is a new store only in a data folder that never held one: where flows were
  numbered before (the mark file below) or blobs are kept, it is refused unless ``init`` says a new
  store is wanted (the daemon's ``--init``). Partners were given those numbers; a silent empty store
  would give them again.

A refusal is ``StoreRefused``, whose message is one line for the operator (the daemon exits 65 on it).

Flow numbers are kept out of reach of a lost database by ``<data dir>/blobs/flow-numbers.mark``, beside
the blobs: ``issued`` (the store's last sequence number, refreshed every few seconds and at shutdown)
and ``ceiling``, kept ``RESERVE`` numbers ahead of it. After the store opens, ``keep_numbers_rising``
compares: a store behind ``issued`` lost numbers (a restored backup, ``--init``), and its sequence jumps
to the ceiling, above any number handed out since the last refresh (that would take half a reserve of
deposits in one refresh period, far beyond what one daemon takes in).

PostgreSQL stores are not checked here: the database has its own durability and its own sequence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.blobs import fsync_dir
from engine.errors import StoreError
from engine.store import sqlite_health

MARK_FILE = "flow-numbers.mark"
RESERVE = 1_000_000  # numbers the ceiling keeps ahead of those handed out


class StoreRefused(StoreError):
    """The store must not be opened as it is: damaged, or missing where a store was kept."""


@dataclass(frozen=True)
class Mark:
    issued: int
    ceiling: int


def mark_path(data_dir: Path) -> Path:
    return data_dir / "blobs" / MARK_FILE


def read_mark(data_dir: Path) -> Mark | None:
    try:
        raw = json.loads(mark_path(data_dir).read_text(encoding="ascii"))
        return Mark(int(raw["issued"]), int(raw["ceiling"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StoreRefused(f"{mark_path(data_dir)} is damaged ({exc}); it keeps flow numbers rising") from None


def write_mark(data_dir: Path, issued: int, previous: Mark | None) -> Mark:
    """Record ``issued``, moving the ceiling up when fewer than half a reserve is left; durable on return."""
    ceiling = previous.ceiling if previous else 0
    if issued + RESERVE // 2 > ceiling:
        ceiling = issued + RESERVE
    mark = Mark(max(issued, previous.issued if previous else 0), ceiling)
    if mark == previous:
        return mark
    path = mark_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="ascii") as fh:
        json.dump({"issued": mark.issued, "ceiling": mark.ceiling}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)
    return mark


def check_before_open(db: Path, data_dir: Path, *, init: bool, progress: Callable[[], None] | None = None) -> None:
    """Raise ``StoreRefused`` when the store file must not be opened as it is (``progress``: see
    ``sqlite_health.inspect``)."""
    found = sqlite_health.inspect(db, progress)
    if found.state is sqlite_health.FileState.DAMAGED:
        raise StoreRefused(
            f"the store {db} is damaged ({found.detail}); restore a backup (fluxdepot admin restore DIR) "
            "or see what is wrong with fluxdepot admin check-store"
        )
    if found.state is sqlite_health.FileState.MISSING and not init:
        held = _held_data(data_dir)
        if held:
            raise StoreRefused(
                f"no store at {db}, but the data folder held one ({held}); restore a backup "
                "(fluxdepot admin restore DIR), or start with --init for a new store (flow numbers go on rising)"
            )


def keep_numbers_rising(db: Path, data_dir: Path) -> tuple[int, Mark]:
    """After the store opened: raise its sequence to the ceiling if it is behind what was handed out, then
    refresh the mark. Returns the store's last sequence number and the mark."""
    mark = read_mark(data_dir)
    last = sqlite_health.last_sequence(db)
    if mark is not None and last < mark.issued:
        last = sqlite_health.raise_sequence(db, mark.ceiling)
    return last, write_mark(data_dir, last, mark)


def refresh_mark(db: Path, data_dir: Path, previous: Mark) -> Mark:
    """The periodic refresh: the store's last number into the mark (a write only when it moved)."""
    return write_mark(data_dir, sqlite_health.last_sequence(db), previous)


def _held_data(data_dir: Path) -> str:
    """What says this data folder held a store: the mark, or blobs."""
    mark = read_mark(data_dir)
    if mark is not None:
        return f"flow numbers were handed out up to {mark.issued}"
    blobs = data_dir / "blobs"
    if blobs.is_dir() and any(p.is_file() for p in blobs.rglob("*")):
        return f"blobs are kept in {blobs}"
    return ""
