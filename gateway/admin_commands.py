"""``fluxdepot admin …``: offline administration against the configured store (DESIGN §3).

* ``migrate`` — apply pending migrations and exit.
* ``import-directory FILE`` — structures, users, technical users, partners from a TOML directory file
  (format: ``engine/directory_file.py``) or structures from a CSV file (header: ``siret,name`` and the
  optional flag columns ``active,public,provider,service_code_required,engagement_required,
  service_or_engagement_required``).
* ``verify-audit`` — walk every flow's hash-chained status events; exit 1 and list any break.
* ``backup DIR`` — a consistent online copy of the SQLite store (SQLite's backup API) and the blobs.
* ``restore DIR`` — put a backup back into the data folder (the daemon must be stopped).
* ``purge`` — delete final flows older than ``[retention] flows_days`` and the blobs only they used.
* ``check-store`` — SQLite's full integrity check of the store file, and its foreign keys; exit 1 on damage.
* ``replay --ruleset NAME`` — the stored flows judged again under another ruleset, the store opened
  read-only (``gateway.replay_command``); exit 1 when some verdict would change.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.request import pathname2url

from engine.audit import verify_chain
from engine.blobs import BlobStore
from engine.cpu_pool import CpuPool
from engine.directory import DirectoryData, Structure
from engine.directory_file import DirectoryFileError, load_directory
from engine.replay import Replay, ReplayRequest
from engine.store import open_store, sqlite_health, sqlite_path
from engine.store.readonly import open_read_only
from engine.technical import warm_up
from gateway.replay_command import Output, run_replay
from gateway.settings import Settings

EX_OK, EX_PROBLEM, EX_USAGE = 0, 1, 2
_FLAGS = (
    "active",
    "public",
    "provider",
    "service_code_required",
    "engagement_required",
    "service_or_engagement_required",
)


async def migrate(settings: Settings, out: TextIO) -> int:
    store = await open_store(settings.store_url)
    await store.close()
    print(f"store {settings.store_url}: migrations applied", file=out)
    return EX_OK


async def import_directory(settings: Settings, file: Path, out: TextIO, err: TextIO) -> int:
    try:
        data = read_csv_structures(file) if file.suffix.lower() == ".csv" else load_directory(file)
    except DirectoryFileError as exc:
        print(f"fluxdepot admin import-directory: {exc}", file=err)
        return EX_USAGE
    except (OSError, ValueError) as exc:
        print(f"fluxdepot admin import-directory: {file}: {exc}", file=err)
        return EX_USAGE
    store = await open_store(settings.store_url)
    try:
        await store.import_directory(data)
    finally:
        await store.close()
    print(
        f"imported {len(data.structures)} structures, {len(data.users)} users, "
        f"{len(data.technical_users)} technical users, {len(data.partners)} partners from {file}",
        file=out,
    )
    return EX_OK


def read_csv_structures(file: Path) -> DirectoryData:
    """Structures from a CSV file; raises ``ValueError`` naming the line of the first bad row."""
    structures = []
    with file.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"siret", "name"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"missing columns: {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            siret = (row.get("siret") or "").strip()
            if not (len(siret) == 14 and siret.isdigit()):
                raise ValueError(f"line {line}: siret must be 14 digits, not {siret!r}")
            flags = {}
            for flag in _FLAGS:
                value = (row.get(flag) or "").strip().lower()
                if value not in ("", "true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"line {line}: {flag} must be true or false, not {value!r}")
                flags[flag] = value in ("true", "1", "yes") if value else flag == "active"
            structures.append(
                Structure(
                    siret=siret,
                    name=(row.get("name") or "").strip(),
                    active=flags["active"],
                    is_public=flags["public"],
                    is_provider=flags["provider"],
                    service_code_required=flags["service_code_required"],
                    engagement_required=flags["engagement_required"],
                    service_or_engagement_required=flags["service_or_engagement_required"],
                )
            )
    return DirectoryData(structures=tuple(structures))


async def verify_audit(settings: Settings, out: TextIO) -> int:
    store = await open_store(settings.store_url)
    try:
        numbers = await store.all_flow_numbers()
        breaks = []
        for number in numbers:
            breaks.extend(verify_chain(await store.history(number)))
    finally:
        await store.close()
    for b in breaks:
        print(f"BREAK flow {b.flow_number} event {b.seq}: {b.reason}", file=out)
    print(f"verified {len(numbers)} flows: {len(breaks)} break(s)", file=out)
    return EX_PROBLEM if breaks else EX_OK


def _sqlite_path(settings: Settings) -> Path:
    url = settings.store_url
    if not url.startswith("sqlite:"):
        raise ValueError(
            "backup, restore and check-store handle the SQLite store; for PostgreSQL use pg_dump and pg_amcheck"
        )
    return Path(sqlite_path(url))


def backup(settings: Settings, target: Path, out: TextIO) -> int:
    """Snapshot the database with SQLite's online backup API, then copy the blobs it references.

    Blobs are immutable and written before their flow row, so every blob the snapshot references
    already exists when the copy starts: the pair is consistent while the daemon keeps running.
    """
    db = _sqlite_path(settings)
    target.mkdir(parents=True, exist_ok=False)
    source = sqlite3.connect(f"file:{pathname2url(str(db.resolve()))}?mode=ro", uri=True)
    dest = sqlite3.connect(target / "fluxdepot.db")
    try:
        with dest:
            source.backup(dest)
        keys = [row[0] for row in dest.execute("SELECT DISTINCT blob_key FROM flows WHERE blob_key <> ''")]
    finally:
        source.close()
        dest.close()
    root = settings.data_dir / "blobs"
    blobs = BlobStore(root)
    for key in keys:
        src = blobs.path(key)
        dst = target / "blobs" / src.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    manifest = {"created_at": datetime.now(UTC).isoformat(), "flows_blobs": len(keys), "source": str(db)}
    (target / "backup.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    print(f"backup written to {target}: database + {len(keys)} blobs", file=out)
    return EX_OK


def restore(settings: Settings, source: Path, out: TextIO, *, force: bool = False) -> int:
    """Copy a backup into the data folder. The daemon must be stopped; an existing store needs --force."""
    if not (source / "backup.json").is_file():
        raise ValueError(f"{source} is not a fluxdepot backup (no backup.json)")
    db = _sqlite_path(settings)
    if db.exists() and not force:
        raise ValueError(f"{db} exists; stop the daemon and pass --force to replace it")
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy2(source / "fluxdepot.db", db)
    if (source / "blobs").is_dir():
        shutil.copytree(source / "blobs", settings.data_dir / "blobs", dirs_exist_ok=True)
    print(f"restored {source} into {settings.data_dir}", file=out)
    return EX_OK


async def purge(settings: Settings, out: TextIO, *, now: datetime | None = None) -> int:
    before = (now or datetime.now(UTC)) - timedelta(days=settings.retention.flows_days)
    store = await open_store(settings.store_url)
    try:
        flows, blob_keys = await store.purge_flows(before)
    finally:
        await store.close()
    blobs = BlobStore(settings.data_dir / "blobs")
    for key in blob_keys:
        blobs.delete(key)
    print(f"purged {flows} final flows deposited before {before.date()} and {len(blob_keys)} blobs", file=out)
    return EX_OK


def check_store(settings: Settings, out: TextIO) -> int:
    """Read the whole SQLite store (it may be in use); list what is damaged."""
    db = _sqlite_path(settings)
    if not db.is_file():
        raise ValueError(f"no store at {db}")
    problems = sqlite_health.integrity_check(db)
    for problem in problems:
        print(f"DAMAGED {db}: {problem}", file=out)
    print(f"store {db}: {'damaged, restore a backup' if problems else 'ok'}", file=out)
    return EX_PROBLEM if problems else EX_OK


async def replay(settings: Settings, request: ReplayRequest, output: Output, out: TextIO, err: TextIO) -> int:
    """Open the store read-only (no lock, no migration: the daemon may run) and a validation pool, then
    replay (``gateway.replay_command``)."""
    store = await open_read_only(settings.store_url)
    pool = CpuPool(settings.workers.processes, initializer=warm_up, limits=settings.workers.process_limits())
    try:
        blobs = BlobStore(settings.data_dir / "blobs")
        replayer = Replay(store, blobs, settings.engine_limits, pool.run, in_flight=2 * settings.workers.processes)
        return await run_replay(replayer, request, output, out, err)
    finally:
        await asyncio.to_thread(pool.close)
        await store.close()
