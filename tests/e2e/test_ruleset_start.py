"""``fluxdepot serve`` refuses to start without the artefacts of its ruleset: one line saying how to install
them, exit 78 (systemd does not restart it), before anything listens."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.test_startup_failures import EX_CONFIG, serve


def test_serve_without_its_artefacts_exits_78_in_one_line(tmp_path: Path) -> None:
    """With [rules] artefacts_dir pointing at an empty folder the daemon prints one line naming the missing
    CEN CII XSLT and the command that installs it, and exits 78."""
    empty = tmp_path / "artefacts"
    empty.mkdir()
    env = {**os.environ, "FLUXDEPOT_RULES__ARTEFACTS_DIR": str(empty)}
    code, err = serve(tmp_path / "data", env=env)
    assert code == EX_CONFIG, err
    assert len(err) == 1
    assert err[0].startswith("fluxdepot: error: validation artefact EN16931-CII-validation.xslt not found at ")
    assert err[0].endswith(f"-m engine.validation.fetch_artefacts --dir {empty}`")
