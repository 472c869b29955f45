"""The directory: structures and their services, users, technical users, EDI partners, profiles.

Plain data (DESIGN §6). The store persists it; ``engine.directory_file`` reads it from TOML;
``engine.business`` checks invoices against a ``DirectorySnapshot`` (only the structures a flow needs).

One key, one partner: an SSH public key logs in as the partner code it belongs to, so no two partner
codes may hold the same key (compared by type and base64 body, the comment aside). ``KeyOwners`` is the
one check: the directory file applies it within the file, and the store applies it (``check_partner_keys``)
to the keys it already holds whenever partners are written, by an import or by ``UpsertPartner``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.errors import AlreadyExists
from engine.model import RejectionRule, Ruleset, Syntax

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
    password_hash: str | None = None  # the portal log-in's argon2id hash (engine.services.portal_auth)


@dataclass(frozen=True)
class TechnicalUser:
    login: str
    siret: str
    token_hash: str | None = None
    token_lookup: str | None = None
    ruleset: Ruleset | None = None  # judges its flows; None: the config's [rules] ruleset


@dataclass(frozen=True)
class Partner:
    """An EDI partner: code ``^[A-Z]{3}[0-9]{3}$``, its structure, SSH keys and rejection rules."""

    code: str
    siret: str
    public_keys: tuple[str, ...] = ()  # OpenSSH one-line public keys
    password_hash: str | None = None
    rules: tuple[tuple[Syntax, RejectionRule], ...] = ()  # per syntax; default partial
    status_files: bool = False  # also write CPPStatut files to the outbox
    ruleset: Ruleset | None = None  # judges its flows; None: the config's [rules] ruleset

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


def key_body(public_key: str) -> str:
    """What identifies an OpenSSH one-line public key: ``<type> <base64>``, without the comment."""
    return " ".join(public_key.split()[:2])


def key_fingerprint(public_key: str) -> str:
    """The key's ``SHA256:`` fingerprint as ``ssh-keygen -l`` prints it (the start of every key of one
    type is the same, so the key text itself does not tell keys apart)."""
    parts = public_key.split()
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (IndexError, binascii.Error):
        return key_body(public_key)[-16:]
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_taken(code: str, public_key: str, owner: str) -> str:
    """The sentence refusing ``public_key`` to partner ``code`` because ``owner`` holds it."""
    return (
        f"public key {key_fingerprint(public_key)} given to partner {code} already belongs to partner {owner}: "
        "a key logs in as one partner only"
    )


class KeyOwners:
    """Which partner code holds each public key, as keys are claimed one by one."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    def claim(self, code: str, public_key: str) -> str | None:
        """Give ``public_key`` to ``code``: None when done (or already its own), else the code holding it."""
        owner = self._owners.setdefault(key_body(public_key), code)
        return None if owner == code else owner


def check_partner_keys(stored: Iterable[tuple[str, str]], partners: Sequence[Partner]) -> None:
    """Refuse to write ``partners`` when one of their keys belongs to another partner code.

    ``stored`` are the ``(code, public_key)`` pairs the store holds; those of ``partners`` themselves are
    about to be replaced and do not count. Raises ``AlreadyExists`` naming both partner codes.
    """
    replaced = {p.code for p in partners}
    owners = KeyOwners()
    for code, public_key in stored:
        if code not in replaced:
            owners.claim(code, public_key)
    for partner in partners:
        for public_key in partner.public_keys:
            owner = owners.claim(partner.code, public_key)
            if owner is not None:
                raise AlreadyExists(key_taken(partner.code, public_key, owner))
