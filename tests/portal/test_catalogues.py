"""Every message the portal's templates show has a non-empty translation in both catalogues."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

PORTAL = Path(__file__).resolve().parents[2] / "gateway" / "http" / "portal"


def _msgids() -> set[str]:
    found = extract_from_dir(
        str(PORTAL / "templates"),
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
    )
    return {message for _, _, message, _, _ in found if isinstance(message, str)}


def test_every_template_message_is_translated_in_french_and_english() -> None:
    """A msgid missing from a catalogue, or with an empty msgstr, fails the test (and names it)."""
    msgids = _msgids()
    assert len(msgids) > 50
    for lang in ("fr", "en"):
        with (PORTAL / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=lang)
        missing = sorted(m for m in msgids if m not in catalog or not catalog[m].string)
        assert not missing, f"{lang}: untranslated: {missing}"
