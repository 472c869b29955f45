"""The engine's texts the portal shows (the report catalogue's messages and hints) have their French text
in ``locale/fr/LC_MESSAGES/engine.po``; the French reform's own rules are left out (their French text comes
with each finding)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from engine.catalogue import CATALOGUE
from engine.catalogue_fr_flux2 import RULES, code_of
from gateway.http.portal.i18n import ENGINE_DOMAIN, Formats, load_translations


def test_every_catalogued_message_and_hint_reads_in_french() -> None:
    """A catalogue code (besides the BR-FR rules) whose message or hint has no French text fails the test,
    naming it; English pages show the engine's text unchanged."""
    fr = Formats("fr", ZoneInfo("Europe/Paris"), load_translations("fr", ENGINE_DOMAIN))
    en = Formats("en", ZoneInfo("Europe/Paris"), load_translations("en", ENGINE_DOMAIN))
    reform = {code_of(rule) for rule, *_ in RULES}
    missing = [
        f"{code}: {text}"
        for code, entry in CATALOGUE.items()
        if code not in reform
        for text in (entry.message, entry.hint)
        if fr.engine(text) == text
    ]
    assert not missing, missing
    assert all(en.engine(e.hint) == e.hint for e in CATALOGUE.values())


def test_a_precise_message_keeps_its_detail_beside_the_french_one() -> None:
    """A finding more precise than its catalogue message reads as the French catalogue message, with the
    engine's own text kept as the detail."""
    fr = Formats("fr", ZoneInfo("Europe/Paris"), load_translations("fr", ENGINE_DOMAIN))
    said, detail = fr.finding("BUYER_UNKNOWN", "The recipient 21750001600019 is not known to the platform.")
    assert said == "Le destinataire n'est pas connu de la plateforme."
    assert detail == "The recipient 21750001600019 is not known to the platform."
    assert fr.finding("BUYER_UNKNOWN", CATALOGUE["BUYER_UNKNOWN"].message)[1] == ""
