"""Every limit of the resource budget is configurable, documented with its default, and validated."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from engine.model import Limits
from gateway.settings import LimitsSection, SettingsError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "fluxdepot.example.toml"


def test_every_limit_is_a_config_key() -> None:
    """[limits] has exactly the fields of engine.model.Limits, with the same defaults."""
    assert set(LimitsSection.model_fields) == {f.name for f in fields(Limits)}
    assert LimitsSection().to_limits() == Limits()


def test_example_config_documents_every_limit_with_its_default() -> None:
    """The example file sets every limit, each to its default (so it documents the defaults)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("[limits]") :].split("\n[", 1)[0]
    keys = {line.split("=", 1)[0].strip() for line in block.splitlines()[1:] if "=" in line}
    assert keys == {f.name for f in fields(Limits)}
    assert load_settings(EXAMPLE).engine_limits == Limits()


def test_limits_from_the_environment_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """FLUXDEPOT_LIMITS__* overrides a limit; a depth past libxml2's 256 is refused, naming its source."""
    monkeypatch.setenv("FLUXDEPOT_LIMITS__MAX_PDF_ATTACHMENTS", "3")
    assert load_settings(EXAMPLE).engine_limits.max_pdf_attachments == 3
    monkeypatch.setenv("FLUXDEPOT_LIMITS__MAX_XML_DEPTH", "300")
    with pytest.raises(SettingsError) as refused:
        load_settings(EXAMPLE)
    assert any("FLUXDEPOT_LIMITS__MAX_XML_DEPTH" in p and "max_xml_depth" in p for p in refused.value.problems)
