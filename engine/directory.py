"""The directory: structures and their services, users, technical users, EDI partners, profiles.

Plain data (DESIGN §6). The store persists it; ``engine.directory_file`` reads it from TOML;
``engine.business`` checks invoices against a ``DirectorySnapshot`` (only the structures a flow needs).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from engine.model import RejectionRule, Syntax

FLOW_FOLLOW_UP = "SUIVI_FLUX"


class Role(enum.Enum):
    PRIMARY_MANAGER = "primary_manager"
    USER = "user"


@dataclass(frozen=True)
class Service:
    code: str
    label: str = ""
    active: bool = True


@dataclass(frozen=True)
class Structure:
    siret: str
    name: str
    active: bool = True
    is_public: bool = False  # a public buyer (receives invoices)
    is_provider: bool = False  # an invoicing provider (deposits for other issuers)
    service_code_required: bool = False
    engagement_required: bool = False
    service_or_engagement_required: bool = False
    services: tuple[Service, ...] = ()

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)


@dataclass(frozen=True)
class Membership:
    login: str
    siret: str
    role: Role


@dataclass(frozen=True)
class User:
    """A portal user; ``token_hash`` is the salted hash of the bearer token (never the token)."""

    login: str
    name: str = ""
    token_hash: str | None = None
    token_lookup: str | None = None  # engine.secrets.secret_lookup_id(token): finds the row, proves nothing


@dataclass(frozen=True)
class TechnicalUser:
    login: str
    siret: str
    token_hash: str | None = None
    token_lookup: str | None = None


@dataclass(frozen=True)
class Partner:
    """An EDI partner: code ``^[A-Z]{3}[0-9]{3}$``, its structure, SSH keys and rejection rules."""

    code: str
    siret: str
    public_keys: tuple[str, ...] = ()  # OpenSSH one-line public keys
    password_hash: str | None = None
    rules: tuple[tuple[Syntax, RejectionRule], ...] = ()  # per syntax; default partial
    status_files: bool = False  # also write CPPStatut files to the outbox

    def rule_for(self, syntax: Syntax) -> RejectionRule:
        return dict(self.rules).get(syntax, RejectionRule.PARTIAL)


@dataclass(frozen=True)
class Profile:
    login: str
    siret: str
    profile: str = FLOW_FOLLOW_UP


@dataclass(frozen=True)
class DirectoryData:
    """A whole directory, as imported from a file."""

    structures: tuple[Structure, ...] = ()
    users: tuple[User, ...] = ()
    memberships: tuple[Membership, ...] = ()
    technical_users: tuple[TechnicalUser, ...] = ()
    partners: tuple[Partner, ...] = ()
    profiles: tuple[Profile, ...] = ()


@dataclass(frozen=True)
class DirectorySnapshot:
    """The structures the business checks of one flow need, keyed by SIRET."""

    structures: dict[str, Structure] = field(default_factory=dict)

    def get(self, siret: str | None) -> Structure | None:
        return self.structures.get(siret) if siret else None
