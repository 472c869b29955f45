"""Driver-neutral building of directory entries and principals from stored rows (``directory_store``).
Rows are read by column name; booleans may come back as booleans or as 0/1.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.directory import Partner, Role, Service, Structure
from engine.model import RejectionRule, Ruleset, Syntax
from engine.permissions import Principal, PrincipalKind
from engine.store.rows import Row


def structures_from_rows(rows: Iterable[Row]) -> dict[str, Structure]:
    """Structures by siret from rows of a structure joined with its services (none: NULL service columns),
    in row order."""
    heads: dict[str, Row] = {}
    services: dict[str, list[Service]] = {}
    for row in rows:
        siret = str(row["siret"])
        heads.setdefault(siret, row)
        services.setdefault(siret, [])
        if row["service_code"] is not None:
            services[siret].append(
                Service(str(row["service_code"]), str(row["service_label"]), bool(row["service_active"]))
            )
    return {
        siret: Structure(
            siret=siret,
            name=str(row["name"]),
            active=bool(row["active"]),
            is_public=bool(row["is_public"]),
            is_provider=bool(row["is_provider"]),
            service_code_required=bool(row["service_code_required"]),
            engagement_required=bool(row["engagement_required"]),
            service_or_engagement_required=bool(row["service_or_engagement_required"]),
            services=tuple(services[siret]),
        )
        for siret, row in heads.items()
    }


def partner_from_rows(head: Row, keys: Iterable[Row], rules: Iterable[Row]) -> Partner:
    """A partner from its row, its key rows (``public_key``) and rule rows (``syntax``, ``rule``), in order."""
    return Partner(
        code=str(head["code"]),
        siret=str(head["siret"]),
        public_keys=tuple(str(k["public_key"]) for k in keys),
        password_hash=None if head["password_hash"] is None else str(head["password_hash"]),
        rules=tuple((Syntax(r["syntax"]), RejectionRule(r["rule"])) for r in rules),
        status_files=bool(head["status_files"]),
        ruleset=known_ruleset(head["ruleset"]),
    )


def known_ruleset(name: object) -> Ruleset | None:
    """A stored ruleset name as a ``Ruleset``; None when unset, or unknown to this version (the default
    ruleset judges then, as before the name was set)."""
    try:
        return None if name is None else Ruleset(str(name))
    except ValueError:
        return None


def user_principal(login: str, memberships: Iterable[Row], follows: Iterable[Row]) -> Principal:
    """A user from its membership rows (``siret``, ``role``) and flow follow-up profile rows (``siret``)."""
    memberships = list(memberships)
    return Principal(
        PrincipalKind.USER,
        login,
        member_of=frozenset(str(r["siret"]) for r in memberships),
        manages=frozenset(str(r["siret"]) for r in memberships if r["role"] == Role.PRIMARY_MANAGER.value),
        follows=frozenset(str(r["siret"]) for r in follows),
    )


def attached_principal(kind: str, login: str, row: Row) -> Principal:
    """A technical user or partner from the row of its structure (``siret``, ``is_provider``)."""
    return Principal(PrincipalKind(kind), login, siret=str(row["siret"]), provider=bool(row["is_provider"]))
