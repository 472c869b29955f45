"""The ruleset chosen per technical user and per EDI partner (directory file ``ruleset``), on a real store,
real validation processes and real artefacts.

The factory's integrating invoice passes EN 16931 but lacks what the French "Flux 2" rules ask for
(BR-FR-05, BR-FR-08): a depositor on ``en16931+fr-flux2`` gets those findings and a rejection, another one
on the config's default sees it integrate; each stored report names the ruleset that judged it.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from engine.directory_file import DirectoryFileError, parse_directory
from engine.model import Channel, Rules, Ruleset
from engine.ruleset_choice import DepositorRulesets
from engine.status import FlowStatus
from tests import factory
from tests.harness import DEMO_DIRECTORY, DEMO_SUPPLIER_SIRET, Harness

BOTH_WALKS = True  # each test twice: FlowProcessor and the flows' pump (tests/conftest.py)

FLUX2 = Ruleset.EN16931_FR_FLUX2.value
FLUX2_CODES = {"BR_FR_05", "BR_FR_08"}

# Two technical users and two partners of the demo supplier: one of each on Flux 2, the other on the default.
EXTRA = f"""
[[technical_users]]
login = "TECH_FR@demo"
siret = "{DEMO_SUPPLIER_SIRET}"
token = "fr-technical-token"
ruleset = "{FLUX2}"

[[technical_users]]
login = "TECH_EU@demo"
siret = "{DEMO_SUPPLIER_SIRET}"
token = "eu-technical-token"

[[partners]]
code = "FRA001"
siret = "{DEMO_SUPPLIER_SIRET}"
ruleset = "{FLUX2}"

[[partners]]
code = "EUR001"
siret = "{DEMO_SUPPLIER_SIRET}"
"""


def _directory(extra: str = EXTRA) -> dict[str, Any]:
    return tomllib.loads(DEMO_DIRECTORY.read_text(encoding="utf-8") + extra)


@pytest.fixture
async def chosen(harness: Harness) -> Harness:
    await harness.store.import_directory(parse_directory(_directory(), str(DEMO_DIRECTORY)))
    return harness


def _error_codes(report: dict[str, Any]) -> set[str]:
    return {e["code"] for invoice in report["invoices"] for e in invoice["errors"]}


async def test_a_technical_user_on_flux2_gets_the_french_rules(chosen: Harness) -> None:
    """The same invoice, deposited by two technical users of one supplier: the one whose directory entry
    says en16931+fr-flux2 is rejected with BR-FR findings and its report names that ruleset; the other,
    on the default, integrates under en16931."""
    content = factory.ubl_invoice(factory.integrating("FA-2026-1701"))
    french = await chosen.deposit_and_process("fr.xml", content, depositor="tech:TECH_FR@demo")
    other = factory.ubl_invoice(factory.integrating("FA-2026-1702"))
    default = await chosen.deposit_and_process("eu.xml", other, depositor="tech:TECH_EU@demo")

    assert french.status is FlowStatus.REJECTED
    report = await chosen.report(french.flow_number)
    assert _error_codes(report) >= FLUX2_CODES
    assert report["ruleset_version"].startswith(f"{FLUX2}: ")

    assert default.status is FlowStatus.INTEGRATED
    report = await chosen.report(default.flow_number)
    assert not _error_codes(report)
    assert report["ruleset_version"].startswith("en16931: ")


async def test_an_edi_partner_on_flux2_gets_the_french_rules(chosen: Harness) -> None:
    """EDI deposits of two partners (as the SFTP intake makes them): the partner on en16931+fr-flux2 gets
    the Flux 2 rejection, the partner without a ruleset integrates under the default."""
    french = await chosen.deposit_and_process(
        "fr.xml",
        factory.ubl_invoice(factory.integrating("FA-2026-1703")),
        channel=Channel.EDI,
        depositor="partner:FRA001",
        partner_code="FRA001",
    )
    default = await chosen.deposit_and_process(
        "eu.xml",
        factory.ubl_invoice(factory.integrating("FA-2026-1704")),
        channel=Channel.EDI,
        depositor="partner:EUR001",
        partner_code="EUR001",
    )
    assert french.status is FlowStatus.REJECTED
    report = await chosen.report(french.flow_number)
    assert _error_codes(report) >= FLUX2_CODES
    assert report["ruleset_version"].startswith(f"{FLUX2}: ")
    assert default.status is FlowStatus.INTEGRATED
    assert (await chosen.report(default.flow_number))["ruleset_version"].startswith("en16931: ")


async def test_the_store_keeps_the_choice_and_a_reimport_clears_it(chosen: Harness) -> None:
    """The store returns each depositor's own ruleset (and the partner read carries it); importing the
    directory again without the key puts the entry back on the default."""
    assert await chosen.store.depositor_rulesets() == {
        "tech:TECH_FR@demo": Ruleset.EN16931_FR_FLUX2,
        "partner:FRA001": Ruleset.EN16931_FR_FLUX2,
    }
    partner = await chosen.store.get_partner("FRA001")
    assert partner is not None and partner.ruleset is Ruleset.EN16931_FR_FLUX2
    await chosen.store.import_directory(
        parse_directory(_directory(EXTRA.replace(f'ruleset = "{FLUX2}"', "")), str(DEMO_DIRECTORY))
    )
    assert await chosen.store.depositor_rulesets() == {}


async def test_the_choices_are_read_once_per_ttl(chosen: Harness) -> None:
    """Judging flows does not query the store per flow: the choices are read once, again after the TTL
    or an ``invalidate``."""
    seconds = [0.0]
    choice = DepositorRulesets(chosen.store.depositor_rulesets, Rules(), ttl_s=5.0, clock=lambda: seconds[0])
    for _ in range(100):
        assert (await choice.rules_for("tech:TECH_FR@demo")).ruleset is Ruleset.EN16931_FR_FLUX2
        assert (await choice.rules_for("user:manager")).ruleset is Ruleset.EN16931
    assert choice.reads == 1
    seconds[0] = 5.0
    await choice.rules_for("partner:EUR001")
    choice.invalidate()
    await choice.rules_for("partner:EUR001")
    assert choice.reads == 3


def test_an_unknown_ruleset_is_a_directory_error_naming_the_entry() -> None:
    """A misspelt ruleset is refused with the entry's place and name, and the accepted names."""
    bad = EXTRA.replace(f'ruleset = "{FLUX2}"', 'ruleset = "en16931+fr-flux3"')
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory(_directory(bad), str(DEMO_DIRECTORY))
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("technical_users[1].ruleset: technical user TECH_FR@demo: unknown ruleset")
    assert problems[1].startswith("partners[1].ruleset: partner FRA001: unknown ruleset")
    assert "accepted: en16931, en16931+fr-flux2" in problems[1]
