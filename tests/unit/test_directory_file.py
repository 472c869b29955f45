"""The directory TOML file: a valid file round trip, and a bad file reporting every problem at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.directory import Role
from engine.directory_file import DirectoryFileError, load_directory, parse_directory
from engine.model import RejectionRule, Syntax
from engine.secrets import verify_secret

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJSQhMPMgCaT3O2bZgMJCS2FIaH1Iv9iwqtX8pByPO+ demo"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKb4w2xhbW5vdGFyZWFsa2V5Zm9ydGVzdHNvbmx5MDE demo2"

VALID = f"""
[[structures]]
siret = "40483304800022"
name = "Papeterie"

[[structures]]
siret = "21690123100011"
name = "Commune"
public = true
service_code_required = true
services = [{{ code = "SERV1", label = "Compta" }}, {{ code = "OLD", active = false }}]

[[users]]
login = "manager"
name = "Camille"
token = "demo-manager-token"
memberships = [{{ siret = "40483304800022", role = "primary_manager" }}]
profiles = ["40483304800022"]

[[technical_users]]
login = "tech"
siret = "40483304800022"
token = "demo-technical-token"

[[partners]]
code = "AAA001"
siret = "40483304800022"
public_keys = ["{KEY}"]
public_key_files = ["keys/AAA001.pub"]
rules = {{ IN_DP_E1_UBL_INVOICE = "complete" }}
status_files = true
"""


def test_valid_file_round_trip(tmp_path: Path) -> None:
    """A valid file loads into the directory it describes; tokens are hashed, never kept, and key files are
    read relative to the TOML file."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "AAA001.pub").write_text(f"# comment\n{KEY2}\n\n")
    path = tmp_path / "directory.toml"
    path.write_text(VALID)
    d = load_directory(path)

    papeterie, commune = d.structures
    assert (papeterie.siret, papeterie.name, papeterie.active, papeterie.is_public) == (
        "40483304800022",
        "Papeterie",
        True,
        False,
    )
    assert commune.is_public and commune.service_code_required and not commune.engagement_required
    assert [(s.code, s.label, s.active) for s in commune.services] == [
        ("SERV1", "Compta", True),
        ("OLD", "", False),
    ]

    (user,) = d.users
    assert user.login == "manager" and user.name == "Camille"
    assert user.token_hash is not None and "demo-manager-token" not in user.token_hash
    assert verify_secret("demo-manager-token", user.token_hash)
    assert [(m.login, m.siret, m.role) for m in d.memberships] == [("manager", "40483304800022", Role.PRIMARY_MANAGER)]
    assert [(p.login, p.siret, p.profile) for p in d.profiles] == [("manager", "40483304800022", "SUIVI_FLUX")]

    (tech,) = d.technical_users
    assert tech.siret == "40483304800022" and tech.token_hash is not None
    assert verify_secret("demo-technical-token", tech.token_hash)

    (partner,) = d.partners
    assert partner.code == "AAA001" and partner.status_files
    assert partner.public_keys == (KEY, KEY2)
    assert partner.rule_for(Syntax.UBL_INVOICE) is RejectionRule.COMPLETE
    assert partner.rule_for(Syntax.CII_16B) is RejectionRule.PARTIAL


def test_token_hash_is_accepted_as_is() -> None:
    """An already hashed token is kept with its lookup id; it needs one; token and token_hash clash."""
    data = tomllib.loads(VALID.replace('public_key_files = ["keys/AAA001.pub"]', ""))
    stored = "scrypt$16384$8$1$c2FsdA==$aGFzaA=="
    data["users"][0].pop("token")
    data["users"][0]["token_hash"] = stored
    with pytest.raises(DirectoryFileError, match="token_hash needs token_lookup"):
        parse_directory(data, "mem.toml")
    data["users"][0]["token_lookup"] = "0123456789abcdef"
    (user,) = parse_directory(data, "mem.toml").users[:1]
    assert (user.token_hash, user.token_lookup) == (stored, "0123456789abcdef")
    data["users"][0].pop("token_lookup")
    data["users"][0]["token"] = "x"
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory(data, "mem.toml")
    assert caught.value.problems == ("users[0]: give either token or token_hash, not both",)


BAD = """
color = "blue"

[[structures]]
siret = "40483304800022"
name = "Papeterie"
active = "yes"
services = [{ label = "no code" }, { code = "A" }, { code = "A" }]

[[structures]]
siret = "404833048"
name = ""

[[structures]]
siret = "40483304800022"
name = "Dup"
sirett = "typo"

[[users]]
name = "no login"
memberships = [{ siret = "99999999999999", role = "boss" }]
profiles = ["123"]

[[technical_users]]
login = "tech"
siret = "11111111111111"

[[partners]]
code = "aa1"
siret = "40483304800022"
public_keys = ["not a key"]
public_key_files = ["missing.pub"]
rules = { IN_DP_E9_FOO = "complete", IN_DP_E1_CII_16B = "total" }
status_files = 1
"""


def test_bad_file_reports_every_problem_with_its_location(tmp_path: Path) -> None:
    """One DirectoryFileError lists every problem of the file, each with its location."""
    path = tmp_path / "directory.toml"
    path.write_text(BAD)
    with pytest.raises(DirectoryFileError) as caught:
        load_directory(path)
    problems = caught.value.problems
    where = [p.split(": ", 1)[0] for p in problems]
    assert where == [
        "(top level).color",
        "structures[0].active",
        "structures[0].services[0].code",
        "structures[0].services[2].code",
        "structures[1].siret",
        "structures[1].name",
        "structures[2].sirett",
        "structures[2].siret",
        "users[0].login",
        "users[0].memberships[0].siret",
        "users[0].memberships[0].role",
        "users[0].profiles[0]",
        "technical_users[0].siret",
        "partners[0].code",
        "partners[0].public_keys[0]",
        "partners[0].public_key_files[0]",
        "partners[0].rules.IN_DP_E9_FOO",
        "partners[0].rules.IN_DP_E1_CII_16B",
        "partners[0].status_files",
    ]
    message = str(caught.value)
    assert message.startswith(f"{path}: {len(problems)} problems:")
    assert "'404833048' is not a 14-digit SIRET" in message
    assert "duplicate SIRET '40483304800022'" in message
    assert "'boss' is not one of primary_manager, user" in message
    assert "99999999999999 is not a structure of this file" in message
    assert "'total' is not one of complete, partial" in message
    assert isinstance(caught.value, ValueError)


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    """A missing file or broken TOML is one DirectoryFileError naming the file."""
    with pytest.raises(DirectoryFileError, match="cannot read"):
        load_directory(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[structures]\nsiret = 1\n")
    with pytest.raises(DirectoryFileError, match="not valid TOML"):
        load_directory(broken)


def test_demo_directory_loads() -> None:
    """The demo directory shipped in config/ is valid."""
    demo = Path(__file__).parents[2] / "config" / "demo" / "directory.toml"
    if not demo.exists():
        pytest.skip("no demo directory in this checkout")
    d = load_directory(demo)
    assert d.structures and d.partners


DEMO_KEY_FINGERPRINT = "SHA256:LMSob2CPt+5o+x50yyQH28w53dFXnslPRH4KtsC9rjE"  # ssh-keygen -lf of KEY


def test_two_partners_may_not_share_a_key() -> None:
    """A key given to a second partner code (even with another comment) is a problem at that partner,
    naming the partner that holds it and the key's fingerprint as ssh-keygen prints it; a partner may list
    its own key twice."""
    shared = KEY.rsplit(" ", 1)[0] + " another-comment"
    text = f"""
[[structures]]
siret = "40483304800022"
name = "Papeterie"

[[partners]]
code = "AAA001"
siret = "40483304800022"
public_keys = ["{KEY}", "{shared}"]

[[partners]]
code = "BBB002"
siret = "40483304800022"
public_keys = ["{KEY2}", "{shared}"]
"""
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory(tomllib.loads(text), "directory.toml")
    assert caught.value.problems == (
        f"partners[1].public_keys: public key {DEMO_KEY_FINGERPRINT} given to partner BBB002 already belongs "
        "to partner AAA001: a key logs in as one partner only",
    )
