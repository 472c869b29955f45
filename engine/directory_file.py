"""Read a directory (structures, users, technical users, partners, profiles) from a TOML file.

Every entry is validated and every problem is collected before anything is returned: a bad file raises
one ``DirectoryFileError`` listing each problem with its location (``structures[2].siret``, indexes
counted from 0), so an operator fixes the whole file in one pass (STYLE rule 13). Plaintext tokens and
passwords are hashed here (``engine.secrets``); the returned ``DirectoryData`` never holds one.

Format::

    [[structures]]
    siret = "11000201100044"          # 14 digits, unique
    name = "Ministère des Démos"
    active = true                     # optional, default true
    public = true                     # a public buyer; optional, default false
    provider = false                  # an invoicing provider; optional, default false
    service_code_required = false     # optional flags, default false
    engagement_required = false
    service_or_engagement_required = false
    services = [{ code = "SERV1", label = "Accounts", active = true }]   # label and active optional

    [[users]]
    login = "manager"                 # unique
    name = "Demo Manager"             # optional
    token = "demo-manager-token"      # plaintext, demo files only: hashed on load ...
    # token_hash = "scrypt$..."       # ... or an already hashed token (not both)
    memberships = [{ siret = "11000201100044", role = "primary_manager" }]   # role: primary_manager | user
    profiles = ["11000201100044"]     # structures on which the user holds SUIVI_FLUX
    password_hash = "$argon2id$..."   # optional: the web portal's log-in (argon2id only, never plaintext)

    [[technical_users]]
    login = "tech-demo"; siret = "11000201100044"; token = "..."   # or token_hash
    ruleset = "en16931+fr-flux2"      # optional: judges its flows; default the config's [rules] ruleset

    [[partners]]
    code = "AAA001"                   # ^[A-Z]{3}[0-9]{3}$, unique
    siret = "11000201100044"
    public_keys = ["ssh-ed25519 AAAA... comment"]
    public_key_files = ["AAA001_ed25519.pub"]   # relative to the TOML file; one key per non-blank line
    password = "..."                  # optional SFTP password, hashed on load (or password_hash)
    rules = { IN_DP_E1_UBL_INVOICE = "complete" }   # syntax → complete | partial; default partial
    status_files = false
    ruleset = "en16931+fr-flux2"      # optional, as for a technical user

Memberships, profiles, technical users and partners must name a structure of the same file; two partners
may not share a public key (``engine.directory.KeyOwners``). Unknown keys are errors (a typo must not
silently drop a setting).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.directory import (
    DirectoryData,
    KeyOwners,
    Membership,
    Partner,
    Profile,
    Role,
    Service,
    Structure,
    TechnicalUser,
    User,
    key_taken,
)
from engine.flownumber import PARTNER_CODE
from engine.model import RejectionRule, Ruleset, Syntax
from engine.secrets import hash_secret, is_secret_hash, secret_lookup_id

SIRET = re.compile(r"^[0-9]{14}$")
PUBLIC_KEY = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( .*)?$")
MAX_SERVICE_CODE_CHARS = 100

T = TypeVar("T")


class DirectoryFileError(ValueError):
    """The directory file is invalid; ``problems`` lists every problem as ``location: reason``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class _Checker:
    """Collects problems while reading untyped TOML data."""

    problems: list[str] = field(default_factory=list)

    def problem(self, where: str, reason: str) -> None:
        self.problems.append(f"{where}: {reason}")

    def table(self, value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(where, f"expected a table, got {_type_name(value)}")
            return None
        for key in sorted(set(value) - allowed):
            self.problem(f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
        return value

    def tables(
        self, data: dict[str, Any], key: str, where: str, allowed: frozenset[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each table of the array ``data[key]``, with its location."""
        for i, item in enumerate(self.array(data, key, where)):
            table = self.table(item, f"{where}[{i}]", allowed)
            if table is not None:
                yield f"{where}[{i}]", table

    def array(self, data: dict[str, Any], key: str, where: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.problem(where, f"expected an array, got {_type_name(value)}")
            return []
        return value

    def text(self, data: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.problem(f"{where}.{key}", "missing")
            return None
        if not isinstance(value, str):
            self.problem(f"{where}.{key}", f"expected a string, got {_type_name(value)}")
            return None
        if required and not value.strip():
            self.problem(f"{where}.{key}", "must not be empty")
            return None
        return value

    def flag(self, data: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{where}.{key}", f"expected true or false, got {_type_name(value)}")
            return default
        return value

    def siret(self, value: Any, where: str) -> str | None:
        if not isinstance(value, str):
            self.problem(where, "missing" if value is None else f"expected a string, got {_type_name(value)}")
            return None
        if not SIRET.match(value):
            self.problem(where, f"{value!r} is not a 14-digit SIRET")
            return None
        return value

    def known_siret(self, value: Any, where: str, known: set[str]) -> str | None:
        siret = self.siret(value, where)
        if siret is not None and siret not in known:
            self.problem(where, f"{siret} is not a structure of this file")
            return None
        return siret

    def unique(self, seen: set[str], value: str | None, where: str, what: str) -> None:
        if value is None:
            return
        if value in seen:
            self.problem(where, f"duplicate {what} {value!r}")
        seen.add(value)

    def secret(self, data: dict[str, Any], plain_key: str, hash_key: str, where: str) -> str | None:
        """The hash of ``data[plain_key]``, or ``data[hash_key]`` checked; at most one of the two."""
        plain = self.text(data, plain_key, where)
        hashed = self.text(data, hash_key, where)
        if plain is not None and hashed is not None:
            self.problem(where, f"give either {plain_key} or {hash_key}, not both")
            return None
        if hashed is not None:
            if not is_secret_hash(hashed):
                self.problem(f"{where}.{hash_key}", "is not a scrypt$n$r$p$salt$hash value")
                return None
            return hashed
        if plain is not None:
            if not plain:
                self.problem(f"{where}.{plain_key}", "must not be empty")
                return None
            return hash_secret(plain)
        return None


def _token_lookup(check: _Checker, table: dict[str, Any], where: str) -> str | None:
    """The token's lookup id: computed from a plaintext token, or given beside a token_hash."""
    plain = table.get("token")
    if isinstance(plain, str) and plain:
        return secret_lookup_id(plain)
    lookup = check.text(table, "token_lookup", where)
    if table.get("token_hash") is not None and lookup is None:
        check.problem(where, "token_hash needs token_lookup (engine.secrets.secret_lookup_id of the token)")
    return lookup


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


_TOP = frozenset({"structures", "users", "technical_users", "partners"})
_STRUCTURE = frozenset(
    {
        "siret",
        "name",
        "active",
        "public",
        "provider",
        "service_code_required",
        "engagement_required",
        "service_or_engagement_required",
        "services",
    }
)
_SERVICE = frozenset({"code", "label", "active"})
_USER = frozenset({"login", "name", "token", "token_hash", "token_lookup", "password_hash", "memberships", "profiles"})
ARGON2ID_PREFIX = "$argon2id$"  # a portal user's password_hash (engine.services.portal_auth)
_MEMBERSHIP = frozenset({"siret", "role"})
_TECHNICAL_USER = frozenset({"login", "siret", "token", "token_hash", "token_lookup", "ruleset"})
_PARTNER = frozenset(
    {
        *("code", "siret", "public_keys", "public_key_files", "password", "password_hash", "rules"),
        *("status_files", "ruleset"),
    }
)
_ROLES = ", ".join(r.value for r in Role)
_RULES = ", ".join(r.value for r in RejectionRule)


def load_directory(path: str | Path) -> DirectoryData:
    """Read and validate the directory TOML file at ``path``; raise ``DirectoryFileError`` if bad."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryFileError(source, [f"cannot read the file: {exc}"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryFileError(source, [f"not valid TOML: {exc}"]) from exc
    return parse_directory(data, source)


def parse_directory(
    data: dict[str, Any], source: str, *, read_text: Callable[[Path], str] | None = None
) -> DirectoryData:
    """Validate parsed TOML ``data``; ``source`` names the file (key files are relative to its folder).

    ``read_text`` reads a public key file (default: the file system, UTF-8).
    """
    check = _Checker()
    check.table(data, "(top level)", _TOP)
    structures = _structures(check, data)
    known = {s.siret for s in structures}
    users, memberships, profiles = _users(check, data, known)
    technical_users = _technical_users(check, data, known)
    base = Path(source).parent
    partners = _partners(check, data, known, base, read_text or _read_utf8)
    if check.problems:
        raise DirectoryFileError(source, check.problems)
    return DirectoryData(
        structures=tuple(structures),
        users=tuple(users),
        memberships=tuple(memberships),
        technical_users=tuple(technical_users),
        partners=tuple(partners),
        profiles=tuple(profiles),
    )


def _read_utf8(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _structures(check: _Checker, data: dict[str, Any]) -> list[Structure]:
    structures: list[Structure] = []
    sirets: set[str] = set()
    for where, table in check.tables(data, "structures", "structures", _STRUCTURE):
        siret = check.siret(table.get("siret"), f"{where}.siret")
        check.unique(sirets, siret, f"{where}.siret", "SIRET")
        name = check.text(table, "name", where, required=True)
        flags = {
            key: check.flag(table, key, where, default)
            for key, default in (
                ("active", True),
                ("public", False),
                ("provider", False),
                ("service_code_required", False),
                ("engagement_required", False),
                ("service_or_engagement_required", False),
            )
        }
        services = _services(check, table, where)
        if siret is None or name is None:
            continue
        structures.append(
            Structure(
                siret=siret,
                name=name,
                active=flags["active"],
                is_public=flags["public"],
                is_provider=flags["provider"],
                service_code_required=flags["service_code_required"],
                engagement_required=flags["engagement_required"],
                service_or_engagement_required=flags["service_or_engagement_required"],
                services=tuple(services),
            )
        )
    return structures


def _services(check: _Checker, structure: dict[str, Any], where: str) -> list[Service]:
    services: list[Service] = []
    codes: set[str] = set()
    for item_where, table in check.tables(structure, "services", f"{where}.services", _SERVICE):
        code = check.text(table, "code", item_where, required=True)
        if code is not None and len(code) > MAX_SERVICE_CODE_CHARS:
            check.problem(f"{item_where}.code", f"longer than {MAX_SERVICE_CODE_CHARS} characters")
            code = None
        check.unique(codes, code, f"{item_where}.code", "service code")
        label = check.text(table, "label", item_where) or ""
        active = check.flag(table, "active", item_where, True)
        if code is not None:
            services.append(Service(code=code, label=label, active=active))
    return services


def _users(
    check: _Checker, data: dict[str, Any], known: set[str]
) -> tuple[list[User], list[Membership], list[Profile]]:
    users: list[User] = []
    memberships: list[Membership] = []
    profiles: list[Profile] = []
    logins: set[str] = set()
    for where, table in check.tables(data, "users", "users", _USER):
        login = check.text(table, "login", where, required=True)
        check.unique(logins, login, f"{where}.login", "login")
        name = check.text(table, "name", where) or ""
        token_hash = check.secret(table, "token", "token_hash", where)
        member_sirets: set[str] = set()
        for m_where, m_table in check.tables(table, "memberships", f"{where}.memberships", _MEMBERSHIP):
            siret = check.known_siret(m_table.get("siret"), f"{m_where}.siret", known)
            check.unique(member_sirets, siret, f"{m_where}.siret", "membership of")
            role = _enum(check, Role, m_table.get("role"), f"{m_where}.role", _ROLES)
            if login is not None and siret is not None and role is not None:
                memberships.append(Membership(login=login, siret=siret, role=role))
        profile_sirets: set[str] = set()
        for i, value in enumerate(check.array(table, "profiles", f"{where}.profiles")):
            siret = check.known_siret(value, f"{where}.profiles[{i}]", known)
            check.unique(profile_sirets, siret, f"{where}.profiles[{i}]", "profile on")
            if login is not None and siret is not None:
                profiles.append(Profile(login=login, siret=siret))
        if login is not None:
            lookup = _token_lookup(check, table, where)
            password_hash = _password_hash(check, table, where)
            users.append(
                User(login=login, name=name, token_hash=token_hash, token_lookup=lookup, password_hash=password_hash)
            )
    return users, memberships, profiles


def _password_hash(check: _Checker, table: dict[str, Any], where: str) -> str | None:
    """A portal user's argon2id hash (``$argon2id$...``); plaintext portal passwords are not accepted."""
    hashed = check.text(table, "password_hash", where)
    if hashed is not None and not hashed.startswith(ARGON2ID_PREFIX):
        check.problem(f"{where}.password_hash", "is not an argon2id hash ($argon2id$...)")
        return None
    return hashed


def _technical_users(check: _Checker, data: dict[str, Any], known: set[str]) -> list[TechnicalUser]:
    technical_users: list[TechnicalUser] = []
    logins: set[str] = set()
    for where, table in check.tables(data, "technical_users", "technical_users", _TECHNICAL_USER):
        login = check.text(table, "login", where, required=True)
        check.unique(logins, login, f"{where}.login", "login")
        siret = check.known_siret(table.get("siret"), f"{where}.siret", known)
        token_hash = check.secret(table, "token", "token_hash", where)
        ruleset = _ruleset(check, table, where, f"technical user {login}")
        if login is not None and siret is not None:
            lookup = _token_lookup(check, table, where)
            technical_users.append(
                TechnicalUser(login=login, siret=siret, token_hash=token_hash, token_lookup=lookup, ruleset=ruleset)
            )
    return technical_users


def _partners(
    check: _Checker, data: dict[str, Any], known: set[str], base: Path, read_text: Callable[[Path], str]
) -> list[Partner]:
    partners: list[Partner] = []
    codes: set[str] = set()
    owners = KeyOwners()  # one key, one partner (the store checks the keys it already holds the same way)
    for where, table in check.tables(data, "partners", "partners", _PARTNER):
        code = check.text(table, "code", where, required=True)
        if code is not None and not PARTNER_CODE.match(code):
            check.problem(f"{where}.code", f"{code!r} does not match {PARTNER_CODE.pattern}")
            code = None
        check.unique(codes, code, f"{where}.code", "partner code")
        siret = check.known_siret(table.get("siret"), f"{where}.siret", known)
        keys = _public_keys(check, table, where, base, read_text)
        for key in keys:
            owner = owners.claim(code or "?", key)
            if owner is not None:
                check.problem(f"{where}.public_keys", key_taken(code or "?", key, owner))
        password_hash = check.secret(table, "password", "password_hash", where)
        rules = _rules(check, table.get("rules", {}), f"{where}.rules")
        status_files = check.flag(table, "status_files", where, False)
        ruleset = _ruleset(check, table, where, f"partner {code}")
        if code is not None and siret is not None:
            partners.append(
                Partner(
                    code=code,
                    siret=siret,
                    public_keys=tuple(keys),
                    password_hash=password_hash,
                    rules=tuple(rules),
                    status_files=status_files,
                    ruleset=ruleset,
                )
            )
    return partners


def _ruleset(check: _Checker, table: dict[str, Any], where: str, entry: str) -> Ruleset | None:
    """The entry's own ruleset (None: the config's default); an unknown name is a problem naming the entry."""
    name = check.text(table, "ruleset", where)
    if name is None:
        return None
    try:
        return Ruleset.parse(name)
    except ValueError as exc:
        check.problem(f"{where}.ruleset", f"{entry}: {exc}")
        return None


def _public_keys(
    check: _Checker, table: dict[str, Any], where: str, base: Path, read_text: Callable[[Path], str]
) -> list[str]:
    keys: list[str] = []
    for i, value in enumerate(check.array(table, "public_keys", f"{where}.public_keys")):
        key_where = f"{where}.public_keys[{i}]"
        if not isinstance(value, str):
            check.problem(key_where, f"expected a string, got {_type_name(value)}")
        elif not PUBLIC_KEY.match(value.strip()):
            check.problem(key_where, "not an OpenSSH one-line public key ('<type> <base64> [comment]')")
        else:
            keys.append(value.strip())
    for i, value in enumerate(check.array(table, "public_key_files", f"{where}.public_key_files")):
        file_where = f"{where}.public_key_files[{i}]"
        if not isinstance(value, str) or not value:
            check.problem(file_where, "expected a file name")
            continue
        path = base / value
        try:
            text = read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            check.problem(file_where, f"cannot read {path}: {exc}")
            continue
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not lines:
            check.problem(file_where, f"{path} holds no public key")
        for n, line in enumerate(lines, start=1):
            if PUBLIC_KEY.match(line):
                keys.append(line)
            else:
                check.problem(file_where, f"{path} key {n} is not an OpenSSH one-line public key")
    return keys


def _rules(check: _Checker, value: Any, where: str) -> list[tuple[Syntax, RejectionRule]]:
    if not isinstance(value, dict):
        check.problem(where, f"expected a table of syntax = rule, got {_type_name(value)}")
        return []
    rules: list[tuple[Syntax, RejectionRule]] = []
    for name, rule_value in value.items():
        try:
            syntax = Syntax.parse(name)
        except ValueError as exc:
            check.problem(f"{where}.{name}", str(exc))
            syntax = None
        rule = _enum(check, RejectionRule, rule_value, f"{where}.{name}", _RULES)
        if syntax is not None and rule is not None:
            rules.append((syntax, rule))
    return rules


E = TypeVar("E", Role, RejectionRule)


def _enum(check: _Checker, enum_type: type[E], value: Any, where: str, accepted: str) -> E | None:
    if value is None:
        check.problem(where, f"missing; expected one of {accepted}")
        return None
    try:
        return enum_type(value)
    except ValueError:
        check.problem(where, f"{value!r} is not one of {accepted}")
        return None
