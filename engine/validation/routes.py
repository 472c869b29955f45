"""Which schema and schematrons judge a document: one table from (ruleset, family, profile) to steps.

The ``en16931`` ruleset (README "Rulesets", with the reason for each row):

* UBL Invoice / CreditNote: the UBL 2.1 XSD + the CEN EN 16931 UBL XSLT.
* Plain CII (no Factur-X guideline: EN 16931, XRechnung, ZUGFeRD 2.x comfort, PEPPOL, or a PDF carrying
  such an XML): the UN/CEFACT CII D22B XSD (it accepts every content model of the D16B-based Factur-X
  schemas, ``tests/unit/test_cii_schema.py``) + the CEN EN 16931 CII XSLT.
* Factur-X / ZUGFeRD 2.x BASIC, EN16931 and EXTENDED (a PDF, or a CII XML whose guideline names the
  profile): the CEN EN 16931 CII XSLT for the EN 16931 rules, plus the profile's XSD and its schematron
  for what EN 16931 does not cover; the EN 16931 rules that schematron embeds (``BR-*`` but ``BR-FX*``,
  ``CII-*``) are dropped, the CEN XSLT judges them. EXTENDED allows line hierarchies and sub-totals that
  some EN 16931 rules forbid: its schematron replaces those with ``BR-FXEXT-*`` rules, so the CEN rules
  it replaces (``EXTENDED_REPLACES``) are not applied to it.
* Factur-X MINIMUM and BASIC WL: the profile's XSD and schematron only (they are not EN 16931 invoices and
  are refused before their content is judged, ``FACTURX_PROFILE_NOT_ACCEPTED``).

``en16931+fr-flux2`` runs the same steps, then the French "Flux 2" XSLT of the syntax (UBL or CII).

Every finding's severity is its rule's ``flag`` (``engine.validation.rules``), whatever the step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.formats.detect import UBL_CREDIT_NOTE_NS, Detected, Profile
from engine.model import DocumentFamily, Ruleset
from engine.validation.artefacts import Artefact


class Origin(enum.Enum):
    """Who wrote a schematron's rules: decides the catalogue code of its findings."""

    CEN = "cen"  # EN16931_RULE / EN16931_WARNING
    FACTURX = "facturx"  # FACTURX_PROFILE_RULE / FACTURX_PROFILE_WARNING
    FR_FLUX2 = "fr-flux2"  # the BR-FR rule's own code (engine.catalogue_fr_flux2)


@dataclass(frozen=True)
class Step:
    xsd: Artefact | None
    schematron: Artefact | None
    origin: Origin = Origin.CEN
    profile_only: bool = False  # drop the EN 16931 rules the (Factur-X) schematron embeds
    not_applied: frozenset[str] = frozenset()  # rule ids whose findings this step drops


# The EN 16931 rules the Factur-X 1.09 EN16931 schematron carries and the EXTENDED one leaves out, having
# replaced them with its BR-FXEXT-* rules (line hierarchies, sub-totals, VAT breakdown of sub-lines).
# tests/unit/test_routes.py derives this set from the two pinned schematrons.
EXTENDED_REPLACES = frozenset(
    {
        *("BR-22", "BR-23", "BR-24", "BR-26", "BR-27", "BR-28", "BR-38", "BR-44", "BR-54"),
        *("BR-AE-01", "BR-AE-08", "BR-AF-01", "BR-AF-08", "BR-AF-10", "BR-AG-01", "BR-AG-08", "BR-AG-10"),
        *("BR-CO-04", "BR-CO-06", "BR-CO-08", "BR-CO-10", "BR-CO-11", "BR-CO-12", "BR-CO-13", "BR-CO-15"),
        *("BR-CO-16", "BR-CO-17", "BR-CO-22", "BR-CO-24", "BR-E-01", "BR-E-08", "BR-G-01", "BR-G-08"),
        *("BR-IC-01", "BR-IC-08", "BR-O-01", "BR-O-02", "BR-O-03", "BR-O-04", "BR-O-08", "BR-O-11", "BR-O-12"),
        *("BR-O-13", "BR-O-14", "BR-S-01", "BR-S-08", "BR-S-09", "BR-S-10", "BR-Z-01", "BR-Z-08", "BR-Z-10"),
        *("CII-SR-470", "CII-SR-474"),
    }
)

A = Artefact
_CEN_CII = Step(None, A.EN16931_CII_XSLT)


def _profile(xsd: Artefact, schematron: Artefact) -> Step:
    return Step(xsd, schematron, Origin.FACTURX, profile_only=True)


_UBL_INVOICE = (Step(A.UBL_INVOICE_XSD, A.EN16931_UBL_XSLT),)
_UBL_CREDIT_NOTE = (Step(A.UBL_CREDIT_NOTE_XSD, A.EN16931_UBL_XSLT),)
_PLAIN_CII = (Step(A.CII_D22B_XSD, A.EN16931_CII_XSLT),)
_FACTURX: dict[Profile, tuple[Step, ...]] = {
    Profile.MINIMUM: (Step(A.FX_MINIMUM_XSD, A.FX_MINIMUM_XSLT, Origin.FACTURX),),
    Profile.BASIC_WL: (Step(A.FX_BASIC_WL_XSD, A.FX_BASIC_WL_XSLT, Origin.FACTURX),),
    Profile.BASIC: (_profile(A.FX_BASIC_XSD, A.FX_BASIC_XSLT), _CEN_CII),
    Profile.EN16931: (_profile(A.FX_EN16931_XSD, A.FX_EN16931_XSLT), _CEN_CII),
    Profile.EXTENDED: (
        _profile(A.FX_EXTENDED_XSD, A.FX_EXTENDED_XSLT),
        Step(None, A.EN16931_CII_XSLT, not_applied=EXTENDED_REPLACES),
    ),
}
_FLUX2_UBL = Step(None, A.FR_FLUX2_UBL_XSLT, Origin.FR_FLUX2)
_FLUX2_CII = Step(None, A.FR_FLUX2_CII_XSLT, Origin.FR_FLUX2)


def steps_for(document: Detected, ruleset: Ruleset = Ruleset.EN16931) -> tuple[Step, ...]:
    """The validation steps of one detected document under ``ruleset``."""
    ubl = document.family is DocumentFamily.UBL
    steps: tuple[Step, ...]
    if ubl:
        namespace = document.root.tag.partition("}")[0].lstrip("{")
        steps = _UBL_CREDIT_NOTE if namespace == UBL_CREDIT_NOTE_NS else _UBL_INVOICE
    elif document.profile is None:
        steps = _PLAIN_CII
    else:
        steps = _FACTURX[document.profile]
    if ruleset is Ruleset.EN16931_FR_FLUX2:
        steps = (*steps, _FLUX2_UBL if ubl else _FLUX2_CII)
    return steps


def artefacts_of(ruleset: Ruleset) -> tuple[Artefact, ...]:
    """Every artefact ``ruleset`` may run, in catalogue order (what the daemon needs to start)."""
    routes = [_UBL_INVOICE, _UBL_CREDIT_NOTE, _PLAIN_CII, *_FACTURX.values()]
    if ruleset is Ruleset.EN16931_FR_FLUX2:
        routes.append((_FLUX2_UBL, _FLUX2_CII))
    used = {a for steps in routes for step in steps for a in (step.xsd, step.schematron) if a is not None}
    return tuple(a for a in Artefact if a in used)


def describe(ruleset: Ruleset, artefacts: set[Artefact] | frozenset[Artefact]) -> str:
    """A report's ``ruleset_version``: the ruleset and the version and sha256 of each artefact used, e.g.
    ``en16931: CEN EN16931-CII-validation.xslt 1.3.16 sha256:b98a...; UN/CEFACT ... XSD D22B sha256:7be4...``."""
    used = "; ".join(a.describe() for a in Artefact if a in artefacts)
    return f"{ruleset.value}: {used}" if used else ruleset.value
