"""What the portal's routes need beyond ``HttpServices``: built by the composition root
(``gateway.daemon.build_faces``) and found in ``HttpServices.extra["portal"]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import jinja2
from babel.support import Translations

from engine.permissions import Principal
from engine.services.check import CheckService
from engine.services.portal_auth import UserAuthenticator
from engine.services.portal_users import PortalUsers
from engine.services.return_files import ReturnFiles
from gateway.http.portal.i18n import ENGINE_DOMAIN, LANGUAGES, load_translations

PORTAL = "portal"  # its key in HttpServices.extra


@dataclass
class PortalContext:
    users: UserAuthenticator
    members: PortalUsers
    time_zone: ZoneInfo
    translations: dict[str, Translations] = field(default_factory=dict)
    templates: dict[str, jinja2.Environment] = field(default_factory=dict)
    checks: CheckService | None = None  # Check a file; None: the screen says it is not available
    return_files: ReturnFiles | None = None  # the report page's return flow downloads
    engine_texts: dict[str, Translations] = field(default_factory=dict)  # the engine's messages, translated
    names: dict[str, tuple[float, dict[str, str], Principal]] = field(default_factory=dict)  # routing.structure_names

    @classmethod
    def build(
        cls,
        users: UserAuthenticator,
        members: PortalUsers,
        *,
        time_zone: str,
        checks: CheckService | None = None,
        return_files: ReturnFiles | None = None,
    ) -> PortalContext:
        """The catalogues read and the templates' environments made, once per language."""
        ctx = cls(users, members, ZoneInfo(time_zone), checks=checks, return_files=return_files)
        for lang in LANGUAGES:
            translations = load_translations(lang)
            env = jinja2.Environment(
                loader=jinja2.PackageLoader("gateway.http.portal", "templates"),
                autoescape=True,  # every value escaped; nothing is ever marked safe
                extensions=["jinja2.ext.i18n"],
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            ctx.translations[lang] = translations
            ctx.engine_texts[lang] = load_translations(lang, ENGINE_DOMAIN)
            ctx.templates[lang] = env
        return ctx
