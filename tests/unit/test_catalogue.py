"""The catalogue of report codes: complete entries, no duplicates, the README table lists them all."""

from __future__ import annotations

import re

from engine import catalogue
from engine.catalogue import CATALOGUE, as_markdown, finding, hint_of, kind_of
from engine.model import Kind, Severity


def test_every_code_has_kind_message_and_hint() -> None:
    """Each code is an UPPER_SNAKE string with a kind, a message ending in a period and a non-empty hint."""
    for code, entry in CATALOGUE.items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]+", code), code
        assert entry.code == code
        assert isinstance(entry.kind, Kind)
        assert entry.message.strip().endswith("."), code
        assert entry.hint.strip(), code
        assert kind_of(code) is entry.kind and hint_of(code) == entry.hint


def test_no_duplicate_codes() -> None:
    """No code is listed twice (a dict would silently keep the last one)."""
    codes = [e.code for e in catalogue._ENTRIES]
    assert len(codes) == len(set(codes)) == len(CATALOGUE)


def test_markdown_lists_every_code() -> None:
    """as_markdown has a header, a separator and one row per code, in catalogue order."""
    lines = as_markdown().splitlines()
    assert lines[0].startswith("| code |")
    rows = lines[2:]
    assert len(rows) == len(CATALOGUE)
    assert [re.match(r"\| `([A-Z0-9_]+)`", row).group(1) for row in rows] == list(CATALOGUE)  # type: ignore[union-attr]


def test_finding_defaults_from_catalogue() -> None:
    """finding() takes the catalogue's message, severity and business term unless given."""
    f = finding("INVOICE_NUMBER_MISSING", document="a.xml")
    assert f.message == CATALOGUE["INVOICE_NUMBER_MISSING"].message
    assert f.business_term == "BT-1" and f.document == "a.xml" and f.is_error
    note = finding("DIRECTORY_CHECKS_NOT_RUN", "not run")
    assert note.message == "not run" and note.severity is Severity.INFO and not note.is_error
    assert finding("EN16931_WARNING").severity is Severity.WARNING
