"""``fluxdepot check --json``: every timestamp of its output is in one format, ISO 8601 with an offset."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.check_command import EXIT_REJECTED, run_check

REPO = Path(__file__).resolve().parents[2]
DEMO_INVOICES = REPO / "config" / "demo" / "invoices"
EXAMPLE_CONFIG = REPO / "config" / "fluxdepot.example.toml"

# The one format (the report's, Chorus Pro's dateDepotFlux): 2026-12-06T21:00:48.123+00:00
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string of a JSON document with its path (``$[0].history[1].at``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def test_check_json_timestamps_share_one_iso_format_with_offset(tmp_path: Path) -> None:
    """Over files that integrate, are rejected per invoice, are rejected as a flow (empty, not well-formed)
    and a Factur-X PDF, with and without a directory: every timestamp in the JSON output is ISO 8601 with a
    numeric offset in the one format, reads back as an aware datetime of the run, and nothing else in the
    output looks like a time written another way."""
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<Invoice><unclosed></Invoice>")
    files = [
        DEMO_INVOICES / "ok" / "ubl_service_code.xml",
        DEMO_INVOICES / "ok" / "facturx_service_code.pdf",
        DEMO_INVOICES / "rejected" / "duplicate_in_flow.zip",
        empty,
        broken,
    ]
    started = datetime.now(UTC)
    outputs = []
    for config in (None, str(EXAMPLE_CONFIG)):
        out, err = io.StringIO(), io.StringIO()
        code = run_check(
            [str(f) for f in files], syntax=None, config=config, as_json=True, issuer=None, out=out, err=err
        )
        assert code == EXIT_REJECTED, err.getvalue()
        outputs.append(json.loads(out.getvalue()))
    timestamps = 0
    for path, text in _strings(outputs):
        key = path.rsplit(".", 1)[-1]
        if key.endswith("_at") or key == "at":
            assert TIMESTAMP.match(text), (path, text)
            at = datetime.fromisoformat(text)
            assert at.utcoffset() is not None
            assert started - timedelta(seconds=1) <= at <= datetime.now(UTC), (path, text)
            timestamps += 1
        elif LOOKS_LIKE_A_TIME.search(text):
            assert TIMESTAMP.match(text), (path, text)
    assert timestamps == 2 * len(files) * 2  # deposited_at and status_changed_at of each report, twice
