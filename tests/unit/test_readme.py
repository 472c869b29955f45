"""The README documents what the code does."""

from __future__ import annotations

from pathlib import Path

from engine.catalogue import as_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_error_code() -> None:
    """The error-code table in the README is the catalogue's current table (regenerate with
    `python -m engine.catalogue` between the catalogue markers)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- catalogue:start -->") + len("<!-- catalogue:start -->")
    end = text.index("<!-- catalogue:end -->")
    assert text[start:end].strip() == as_markdown().strip()
