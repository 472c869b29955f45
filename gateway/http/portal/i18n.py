"""French and English: the message catalogues, the language of a request, dates in it.

The catalogues are ``locale/<lang>/LC_MESSAGES/messages.po`` (msgid: the English text), and ``engine.po``
for the engine's own texts (``Formats.engine``), read once at start
with Babel and compiled in memory (no compile step). A request's language is the ``fd_lang`` cookie (the
switch on every page), else the best of ``Accept-Language``, else French. Dates are shown in the portal's
time zone (``[portal] time_zone``), formatted for the language. Status labels are the Chorus Pro ones
(``engine.status``: "Reçu", "Intégré partiel", ...).
"""

from __future__ import annotations

import io
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from engine.catalogue import CATALOGUE
from engine.status import FlowStatus

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
ENGINE_DOMAIN = "engine"  # the engine's own texts (catalogue messages and hints), msgid: the English text


def load_translations(lang: str, domain: str = "messages") -> Translations:
    """One catalogue compiled in memory; a language without it (English for the engine's texts, which are
    written in English) gets an empty one: every text shows as it is."""
    source = resources.files("gateway.http.portal").joinpath("locale", lang, "LC_MESSAGES", f"{domain}.po")
    if not source.is_file():
        return Translations()
    with source.open("rb") as f:
        catalog = read_po(f, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang in LANGUAGES and q - position * 1e-6 > best_q:
            best, best_q = lang, q - position * 1e-6
    return best


class Formats:
    """Dates and labels for one language in the portal's time zone."""

    def __init__(self, lang: str, zone: ZoneInfo, engine_texts: Translations | None = None) -> None:
        self.lang = lang
        self.zone = zone
        self._engine_texts = engine_texts

    def engine(self, text: str) -> str:
        """An engine text (a catalogue message or hint, a next action) in the page's language when the
        catalogue ``engine.po`` has it; a more precise text (a schema's own message) stays as it is."""
        if not text or self._engine_texts is None:
            return text
        return str(self._engine_texts.gettext(text))

    def finding(self, code: str, message: str) -> tuple[str, str]:
        """A report entry's message in the page's language, and the engine's own more precise text (in
        English) when it says more than its code's catalogue message ("" otherwise)."""
        translated = self.engine(message)
        if translated != message or self._engine_texts is None or code not in CATALOGUE:
            return translated, ""
        general = self.engine(CATALOGUE[code].message)
        return (general, message) if general != CATALOGUE[code].message else (message, "")

    def when(self, at: datetime | None) -> str:
        return format_datetime(at, "medium", tzinfo=self.zone, locale=self.lang) if at else ""

    def day(self, at: datetime) -> str:
        return format_date(at.astimezone(self.zone), "long", locale=self.lang)

    def status(self, status: FlowStatus) -> str:
        return status.label_fr if self.lang == "fr" else status.label_en
