"""`fluxdepot admin replay` run as a process against a real data folder whose store stays open (as a running
daemon's would): the diff names the invoices a ruleset change flips and the rules why, both ways; nothing
stored changes; usage errors exit 2.

The store: flows judged under the default ruleset (``en16931``) and flows of a technical user whose
directory entry says ``en16931+fr-flux2``. The factory's integrating invoice passes EN 16931 and fails the
French Flux 2 rules BR-FR-05 and BR-FR-08.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sqlite3
import tomllib
from pathlib import Path

import pytest

from engine.directory_file import parse_directory
from engine.model import Ruleset
from engine.status import FlowStatus
from tests import factory
from tests.e2e.daemon import EXAMPLE_CONFIG
from tests.e2e.test_daemon import run_cli
from tests.harness import DEMO_DIRECTORY, DEMO_SUPPLIER_SIRET, Harness

FLUX2 = Ruleset.EN16931_FR_FLUX2.value
FLUX2_RULES = {"BR-FR-08_BT-23", "BR-FR-13_BT-34"}  # failed by the UBL and the CII invoice alike
FRENCH_USER = f"""
[[technical_users]]
login = "TECH_FR@demo"
siret = "{DEMO_SUPPLIER_SIRET}"
token = "fr-technical-token"
ruleset = "{FLUX2}"
"""


def replay(data: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "FLUXDEPOT_WORKERS__PROCESSES": "1"}
    result = run_cli("admin", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data), "replay", *args, env=env)
    return result.returncode, result.stdout, result.stderr


def stored_state(root: Path) -> dict[str, str]:
    """A digest of every table's rows (read on a read-only connection) and of every blob file."""
    state = {}
    with sqlite3.connect(f"file:{root / 'fluxdepot.db'}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            rows = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608 - names from the schema
            state[f"table:{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    for blob in sorted((root / "blobs").rglob("*")):
        if blob.is_file():
            state[f"blob:{blob.relative_to(root)}"] = hashlib.sha256(blob.read_bytes()).hexdigest()
    return state


@pytest.fixture
async def judged(harness: Harness) -> dict[str, str]:
    """Two flows judged under en16931 (one of them a blob file) and one under en16931+fr-flux2; their numbers."""
    text = DEMO_DIRECTORY.read_text(encoding="utf-8") + FRENCH_USER
    await harness.store.import_directory(parse_directory(tomllib.loads(text), str(DEMO_DIRECTORY)))
    default = await harness.deposit_and_process("eu.xml", factory.ubl_invoice(factory.integrating("RP-1")))
    blob = await harness.storing_blob_files().deposit_and_process(
        "eu-blob.xml", factory.cii_invoice(factory.integrating("RP-2"))
    )
    french = await harness.deposit_and_process(
        "fr.xml", factory.ubl_invoice(factory.integrating("RP-3")), depositor="tech:TECH_FR@demo"
    )
    assert (default.status, blob.status, french.status) == (
        FlowStatus.INTEGRATED,
        FlowStatus.INTEGRATED,
        FlowStatus.REJECTED,
    )
    return {"default": default.flow_number, "blob": blob.flow_number, "french": french.flow_number}


async def test_replay_under_flux2_names_the_invoices_it_would_reject(
    harness: Harness, judged: dict[str, str], tmp_path: Path
) -> None:
    """Under en16931+fr-flux2 the two flows integrated under en16931 would be rejected: one CSV row each
    (integrated → rejected, BR-FR-05, BR-FR-08 ... newly failing), the summary counts the rules and the
    status changes, exit 1; the flow already judged under Flux 2 does not change; nothing stored changed
    (every table's rows and every blob, while the store stays open beside it)."""
    before = stored_state(harness.root)
    code, out, err = replay(harness.root, "--ruleset", FLUX2, "--csv", str(tmp_path / "diff.csv"))
    assert code == 1, out + err
    rows = list(csv.DictReader((tmp_path / "diff.csv").read_text(encoding="utf-8").splitlines()))
    assert sorted(r["flow_number"] for r in rows) == sorted([judged["default"], judged["blob"]])
    for row in rows:
        assert (row["stored"], row["replayed"]) == ("integrated", "rejected")
        assert (row["flow_stored"], row["flow_replayed"]) == ("INTEGRATED", "REJECTED")
        assert set(row["newly_failing"].split()) >= FLUX2_RULES
        assert any(rule.startswith("BR-FR-05_BT-22") for rule in row["newly_failing"].split())
        assert row["no_longer_failing"] == ""
    assert f"replay under {FLUX2}: 3 flows" in out
    assert "flows that would change status: 2 (INTEGRATED → REJECTED: 2)" in out
    assert "2 integrated → rejected, 0 rejected → integrated" in out
    newly = out.split("rules that would newly fail (invoices):")[1].split("rules that would no longer fail")[0]
    assert all(re.search(rf"^    {rule} +2$", newly, re.MULTILINE) for rule in FLUX2_RULES), newly
    assert "rules that would no longer fail (invoices): none" in out
    assert stored_state(harness.root) == before


async def test_replay_back_to_en16931_names_the_invoice_it_would_integrate(
    harness: Harness, judged: dict[str, str], tmp_path: Path
) -> None:
    """The reverse: under en16931 the flow judged under Flux 2 would integrate (rejected → integrated,
    BR-FR-05, BR-FR-08 ... no longer failing), as a JSON row; nothing stored changed."""
    before = stored_state(harness.root)
    code, out, err = replay(harness.root, "--ruleset", "en16931", "--json", str(tmp_path / "diff.json"))
    assert code == 1, out + err
    (row,) = json.loads((tmp_path / "diff.json").read_text(encoding="utf-8"))
    assert row["flow_number"] == judged["french"]
    assert (row["stored"], row["replayed"], row["flow_replayed"]) == ("rejected", "integrated", "INTEGRATED")
    assert row["invoice_number"] == "RP-3"
    assert set(row["no_longer_failing"]) >= FLUX2_RULES and row["newly_failing"] == []
    assert "0 integrated → rejected, 1 rejected → integrated" in out
    assert "REJECTED → INTEGRATED: 1" in out
    assert stored_state(harness.root) == before


async def test_nothing_would_change_exits_0(harness: Harness, judged: dict[str, str], tmp_path: Path) -> None:
    """Replaying the en16931 flows (only the day's, of their issuer) under en16931 changes nothing: exit 0,
    an empty JSON array; an issuer without flows replays nothing, exit 0 too."""
    flows = [judged["default"], judged["blob"]]
    code, out, err = replay(
        harness.root, "--ruleset", "en16931", "--issuer", DEMO_SUPPLIER_SIRET, "--json", str(tmp_path / "all.json")
    )
    assert code == 1, out + err  # the Flux 2 flow would integrate: the filter below leaves it out
    assert json.loads((tmp_path / "all.json").read_text())[0]["flow_number"] not in flows
    code, out, err = replay(harness.root, "--ruleset", FLUX2, "--issuer", "55210055400013")
    assert code == 0, out + err
    assert "0 flows" in out and "nothing would change" in out


async def test_same_ruleset_changes_nothing(harness: Harness, tmp_path: Path) -> None:
    """Flows judged under en16931 (integrated, and one rejected by a business rule) replayed under en16931:
    no row, exit 0, "nothing would change"."""
    await harness.deposit_and_process("ok.xml", factory.ubl_invoice(factory.integrating("SAME-1")))
    no_service = factory.InvoiceSpec("SAME-2", factory.DEMO_SUPPLIER, factory.DEMO_BUYER_SERVICE)
    rejected = await harness.deposit_and_process("ko.xml", factory.ubl_invoice(no_service))
    assert rejected.status is FlowStatus.REJECTED
    code, out, err = replay(harness.root, "--ruleset", "en16931", "--json", str(tmp_path / "none.json"))
    assert code == 0, out + err
    assert json.loads((tmp_path / "none.json").read_text()) == []
    assert "replay under en16931: 2 flows" in out and "nothing would change" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ruleset", "en16931+fr-flux3"), "unknown ruleset 'en16931+fr-flux3'; accepted: en16931, en16931+fr-flux2"),
        (("--ruleset", FLUX2, "--since", "2026-03-02", "--until", "2026-03-01"), "is after --until"),
        (("--ruleset", FLUX2, "--since", "March"), "'March' is not a day"),
        (("--ruleset", FLUX2, "--issuer", "123"), "is not a 14-digit SIRET"),
        (("--ruleset", FLUX2, "--csv", "a.csv", "--json", "a.json"), "not allowed with argument"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """A bad ruleset, an empty date window, a malformed day or SIRET, both outputs: exit 2 with one message."""
    code, out, err = replay(tmp_path, *args)
    assert code == 2, out + err
    assert message in err
