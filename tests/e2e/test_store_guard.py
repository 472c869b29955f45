"""The embedded store refuses to start damaged or silently replaced, and flow numbers never go back: a
damaged header, a truncated file or damaged pages stop the start (one line, exit 65); a missing database
in a data folder that held one needs ``--init``; after ``--init`` or the restore of an older backup, new
flow numbers go on above every number already handed out. ``admin check-store`` finds the damage."""

from __future__ import annotations

import random
import signal
from pathlib import Path

from clients.client import Client
from engine.flownumber import parse_flow_number
from tests.e2e.daemon import EXAMPLE_CONFIG, REPO, start_daemon
from tests.e2e.test_daemon import run_cli

EX_DATAERR = 65
INVOICES = sorted((REPO / "config/demo/invoices/ok").glob("*.xml"))
PAGE = 4096


def deposit_all(data: Path, *, extra: tuple[str, ...] = ()) -> list[str]:
    """Start the daemon on ``data``, deposit the demo's ok/ XML invoices, stop it; their flow numbers."""
    daemon = start_daemon(data, extra_args=extra)
    try:
        with Client(daemon.ready["grpc"], token="demo-technical-token") as fd:
            return [fd.deposit_file(path).flow_number for path in INVOICES]
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0


def serve_fails(data: Path, *extra: str) -> list[str]:
    result = run_cli(
        "serve", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data),
        "--grpc-listen", "127.0.0.1:0", "--sftp-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
        "--http-listen", "127.0.0.1:0", *extra,
    )  # fmt: skip
    assert result.returncode == EX_DATAERR, result.stdout[-2000:] + result.stderr
    return result.stderr.splitlines()


def sequence(number: str) -> int:
    return parse_flow_number(number).sequence


def test_a_damaged_header_or_a_truncated_file_stops_the_start(tmp_path: Path) -> None:
    """Overwritten header → exit 65 naming the store; a file cut in half → exit 65 as well."""
    data = tmp_path / "data"
    deposit_all(data)
    db = data / "fluxdepot.db"
    original = db.read_bytes()
    db.write_bytes(b"garbage garbage!" + original[16:])
    (line,) = serve_fails(data)
    assert line == (
        f"fluxdepot: error: the store {db} is damaged (the file does not start with a SQLite header); "
        "restore a backup (fluxdepot admin restore DIR) or see what is wrong with fluxdepot admin check-store"
    )
    db.write_bytes(original[: len(original) // 2])
    (line,) = serve_fails(data)
    assert f"the store {db} is damaged" in line


def test_damaged_pages_stop_the_start_and_check_store_lists_them(tmp_path: Path) -> None:
    """Eight pages overwritten with noise: the daemon refuses to start, and ``admin check-store`` (exit 1)
    says what is damaged, where it said ok before."""
    data = tmp_path / "data"
    deposit_all(data)
    db = data / "fluxdepot.db"
    admin = ["admin", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data), "check-store"]
    healthy = run_cli(*admin)
    assert healthy.returncode == 0 and f"store {db}: ok" in healthy.stdout, healthy.stdout + healthy.stderr
    content = bytearray(db.read_bytes())
    pages = len(content) // PAGE
    rng = random.Random(7)
    for page in rng.sample(range(1, pages), min(8, pages - 1)):  # page 0 holds the header: checked above
        content[page * PAGE : (page + 1) * PAGE] = rng.randbytes(PAGE)
    db.write_bytes(bytes(content))
    (line,) = serve_fails(data)
    assert "is damaged" in line
    damaged = run_cli(*admin)
    assert damaged.returncode == 1
    assert f"store {db}: damaged, restore a backup" in damaged.stdout
    assert "DAMAGED" in damaged.stdout


def test_a_missing_database_beside_a_used_folder_needs_init_and_numbers_go_on(tmp_path: Path) -> None:
    """Deleting the database refuses the start (the folder handed out flow numbers); ``--init`` starts a
    new store whose flow numbers are above every earlier one."""
    data = tmp_path / "data"
    before = deposit_all(data)
    for suffix in ("", "-wal", "-shm"):
        (data / f"fluxdepot.db{suffix}").unlink(missing_ok=True)
    (line,) = serve_fails(data)
    assert line.startswith(f"fluxdepot: error: no store at {data / 'fluxdepot.db'}, but the data folder held one")
    assert "start with --init" in line
    after = deposit_all(data, extra=("--init",))
    assert min(map(sequence, after)) > max(map(sequence, before))


def test_an_emptied_database_file_is_treated_as_missing(tmp_path: Path) -> None:
    """A zero-byte database file (a failed copy, a truncation to nothing) is not a new store either."""
    data = tmp_path / "data"
    deposit_all(data)
    (data / "fluxdepot.db").write_bytes(b"")
    (line,) = serve_fails(data)
    assert "no store at" in line


def test_restoring_an_older_backup_does_not_reuse_flow_numbers(tmp_path: Path) -> None:
    """Back up, deposit more, restore the older backup: the next deposits get numbers above those given
    after the backup, not the same ones again."""
    data = tmp_path / "data"
    deposit_all(data)
    admin = ["admin", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data)]
    assert run_cli(*admin, "backup", str(tmp_path / "backup")).returncode == 0
    given_after_backup = deposit_all(data)
    assert run_cli(*admin, "restore", "--force", str(tmp_path / "backup")).returncode == 0
    again = deposit_all(data)
    assert min(map(sequence, again)) > max(map(sequence, given_after_backup))
