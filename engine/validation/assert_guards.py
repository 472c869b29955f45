"""Skip the runs of document-element asserts that cannot fail on this document.

The CEN UBL schematron's rule on the document element (``/ubl:Invoice | /cn:CreditNote``) holds 727
asserts, most of them "this element should not be here" (``not(cac:A/cbc:B)``) or "at most once"
(``count(cac:A/cbc:B) <= 1``). In saxonche each costs one to two microseconds whatever its test, although
on a real invoice almost none can fail. Python can tell which could, from the lxml tree the worker already
holds for the XSD:

* ``P`` is a path of named child steps (its first step may be a union of names, its last an attribute).
  From the document element it selects ``count(P)`` nodes, counted by one walk of the element's children
  along a trie of the rule's paths. ``not(P)`` fails iff that count is 1 or more, ``count(P) <= 1`` iff 2
  or more.
* Only rules whose context is the document element are guarded (a ``match`` of ``/name`` alternatives):
  there is then one context node and the counts are exact. Deeper rules saved too little to pay for the
  walk (measured on the CEN CII stylesheet).

At load time each run of up to ``RUN`` consecutive such asserts is wrapped in one ``xsl:if`` on its run
number; per document, ``runs_that_may_fail`` gives the runs holding an assert that fails, passed as the
stylesheet parameter ``fluxdepot-runs`` (a map). A skipped run held only asserts whose test is true, so
skipping it changes no finding; every other run runs as published (ids, flags, locations, texts, order).
The parameter is required (when a stylesheet has runs): a transform without it fails, it never skips silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

PARAMETER = "fluxdepot-runs"
RUN = 12  # asserts per guard at most: one that fails makes the others of its run run too
_XSL = "{http://www.w3.org/1999/XSL/Transform}"
_MAP_CONTAINS = "Q{http://www.w3.org/2005/xpath-functions/map}contains"
_NAME = r"[A-Za-z_][\w.-]*"
_STEP = rf"(?:{_NAME}:{_NAME}|@{_NAME}(?::{_NAME})?)"
_PATH = rf"(?:{_STEP}|\(\s*{_STEP}(?:\s*\|\s*{_STEP})*\s*\))(?:/{_STEP})*"
# (test pattern, the count from which the assert fails)
_FORMS = (
    (re.compile(rf"^\s*not\(\s*({_PATH})\s*\)\s*$"), 1),
    (re.compile(rf"^\s*\(?\s*count\(\s*({_PATH})\s*\)\s*<=\s*1\s*\)?\s*$"), 2),
)
# not(//P): P selects from anywhere in the document (a bare attribute allowed: not(//@uri))
_ANYWHERE = re.compile(rf"^\s*not\(\s*//((?:{_NAME}:{_NAME}/)*(?:{_NAME}:{_NAME}|@{_NAME}))\s*\)\s*$")
_ROOT_MATCH = re.compile(rf"^\s*/{_NAME}:{_NAME}(?:\s*\|\s*/{_NAME}:{_NAME})*\s*$")

Paths = list[tuple[tuple[str, ...], str | None]]  # (element names, attribute or None) per union alternative


@dataclass(frozen=True)
class _Assert:
    """A guardable assert: the paths of its test, the count from which it fails, and whether the paths
    select from anywhere in the document (``not(//P)``) rather than from the context node."""

    paths: Paths
    failing: int
    anywhere: bool


@dataclass
class _Node:
    """A trie of a rule's paths: child element name → node; the asserts whose path ends here."""

    children: dict[str, _Node] = field(default_factory=dict)
    ends: list[tuple[int, str | None]] = field(default_factory=list)  # (assert, attribute or None)


@dataclass
class _Rule:
    roots: frozenset[str]  # the document elements the rule matches
    paths: _Node = field(default_factory=_Node)
    asserts: dict[int, tuple[int, int]] = field(default_factory=dict)  # assert → (run, failing count)
    anywhere: list[tuple[tuple[str, ...], str | None, int]] = field(default_factory=list)  # not(//P) asserts


@dataclass
class Guards:
    """The guarded runs of one stylesheet."""

    rules: list[_Rule] = field(default_factory=list)
    runs: int = 0

    def runs_that_may_fail(self, root: etree._Element) -> set[int]:
        """The runs holding an assert that fails on the document whose element is ``root``."""
        runs: set[int] = set()
        attributes: set[str] = set()  # the attribute names of the document, read once if a rule needs them
        for rule in self.rules:
            if root.tag not in rule.roots:
                continue  # the rule never fires on this document: its runs are never reached
            counts: dict[int, int] = {}
            _count_below(root, rule.paths, counts)
            for names, attribute, number in rule.anywhere:
                if _occurs(root, names, attribute, attributes):
                    counts[number] = 1
            for number, count in counts.items():
                run, failing = rule.asserts[number]
                if count >= failing:
                    runs.add(run)
        return runs


def guard(stylesheet: etree._Element) -> Guards:
    """Wrap each run of consecutive guardable asserts of a document-element rule in
    ``xsl:if test="map:contains($fluxdepot-runs, N)"``; declare the parameter. In place."""
    guards = Guards()
    asserts = 0
    for template in stylesheet.iter(f"{_XSL}template"):
        roots = _roots(template)
        if roots is None:
            continue
        rule = _Rule(roots)
        for run in _runs(template):
            for _, found in run:
                rule.asserts[asserts] = (guards.runs, found.failing)
                for names, attribute in found.paths:
                    if found.anywhere:
                        rule.anywhere.append((names, attribute, asserts))
                        continue
                    node = rule.paths
                    for name in names:
                        node = node.children.setdefault(name, _Node())
                    node.ends.append((asserts, attribute))
                asserts += 1
            wrapper = etree.Element(f"{_XSL}if", test=f"{_MAP_CONTAINS}(${PARAMETER}, {guards.runs})")
            run[0][0].addprevious(wrapper)
            for choose, _ in run:
                wrapper.append(choose)
            guards.runs += 1
        if rule.asserts:
            guards.rules.append(rule)
    if not guards.runs:
        return guards  # nothing guarded: no parameter to declare nor to pass
    imports = [child for child in stylesheet if child.tag == f"{_XSL}import"]  # they must come first
    where = stylesheet.index(imports[-1]) + 1 if imports else 0
    stylesheet.insert(where, etree.Element(f"{_XSL}param", name=PARAMETER, required="yes"))
    return guards


def _roots(template: etree._Element) -> frozenset[str] | None:
    """The document elements of a ``match="/a:X | /b:Y"`` rule, as Clark names; None for any other rule."""
    match = template.get("match") or ""
    if not _ROOT_MATCH.match(match):
        return None
    names = [_element(part.strip().lstrip("/"), template.nsmap) for part in match.split("|")]
    return frozenset(n for n in names if n is not None) if None not in names else None


def _runs(template: etree._Element) -> Iterator[list[tuple[etree._Element, _Assert]]]:
    """Runs of two to ``RUN`` consecutive guardable asserts among the template's instructions."""
    run: list[tuple[etree._Element, _Assert]] = []
    for child in template:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions do nothing in a stylesheet
        guardable = _guardable(child)
        if guardable is not None:
            run.append((child, guardable))
            if len(run) < RUN:
                continue
        if len(run) > 1:
            yield run
        run = []
    if len(run) > 1:
        yield run


def _guardable(choose: etree._Element) -> _Assert | None:
    """An assert (an ``xsl:choose`` of an empty ``xsl:when`` and an ``xsl:otherwise``) whose test is one of
    the three forms, else None."""
    if choose.tag != f"{_XSL}choose":
        return None
    branches = [child for child in choose if isinstance(child.tag, str)]
    if len(branches) != 2 or branches[0].tag != f"{_XSL}when" or branches[1].tag != f"{_XSL}otherwise":
        return None
    when = branches[0]
    if len(when) or (when.text or "").strip():
        return None
    test = when.get("test") or ""
    for pattern, failing in _FORMS:
        if match := pattern.match(test):
            paths = _paths(match.group(1), when.nsmap)
            return _Assert(paths, failing, anywhere=False) if paths is not None else None
    if match := _ANYWHERE.match(test):
        paths = _paths(match.group(1), when.nsmap, bare_attribute=True)
        return _Assert(paths, 1, anywhere=True) if paths is not None else None
    return None


def _paths(path: str, namespaces: dict[str | None, str], *, bare_attribute: bool = False) -> Paths | None:
    """``(a:X|a:Y)/b:Z/@w`` → one (element names, attribute) per alternative of the first step; None when a
    prefix is unknown, a name repeats in the union, or the path is a bare attribute (unless
    ``bare_attribute``: ``//@w`` is one wherever it stands)."""
    if path.startswith("("):
        union, _, rest = path[1:].partition(")")
        alternatives = [a.strip() for a in union.split("|")]
        tail = rest.lstrip("/").split("/") if rest else []
    else:
        first, *tail = path.split("/")
        alternatives = [first]
    if len(set(alternatives)) != len(alternatives):
        return None  # (A|A)/B counts its nodes once, the trie would count them twice
    paths: Paths = []
    for alternative in alternatives:
        steps = [alternative, *tail]
        attribute = None
        if steps[-1].startswith("@"):
            attribute = _attribute(steps.pop()[1:], namespaces)
            if attribute is None or not (steps or bare_attribute):
                return None
        names = [_element(step, namespaces) for step in steps]
        if None in names:
            return None
        paths.append((tuple(n for n in names if n is not None), attribute))
    return paths


def _element(step: str, namespaces: dict[str | None, str]) -> str | None:
    """A prefixed element name in Clark notation; None for anything else (an unprefixed name would need
    ``xpath-default-namespace``)."""
    prefix, _, local = step.partition(":")
    uri = namespaces.get(prefix) if re.fullmatch(_NAME, local) else None
    return f"{{{uri}}}{local}" if uri else None


def _attribute(name: str, namespaces: dict[str | None, str]) -> str | None:
    prefix, _, local = name.rpartition(":")
    if not prefix:
        return local
    uri = namespaces.get(prefix)
    return f"{{{uri}}}{local}" if uri else None


def _count_below(node: etree._Element, paths: _Node, counts: dict[int, int]) -> None:
    """Add to ``counts`` the nodes each path selects from ``node`` (walking only along the trie)."""
    for child in node:
        below = paths.children.get(child.tag)  # a comment's tag is a function: never a key
        if below is None:
            continue
        for number, attribute in below.ends:
            if attribute is None or attribute in child.attrib:
                counts[number] = counts.get(number, 0) + 1
        if below.children:
            _count_below(child, below, counts)


def _occurs(root: etree._Element, names: tuple[str, ...], attribute: str | None, attributes: set[str]) -> bool:
    """Whether ``//names/@attribute`` selects a node in the document of ``root`` (``attributes`` caches
    the document's attribute names for a bare ``//@attribute``)."""
    if not names:
        if not attributes:
            attributes.update(key for element in root.iter() for key in element.attrib)
            attributes.add("")  # read: an empty document still counts as read
        return attribute in attributes
    for element in root.iter(names[-1]):
        if attribute is not None and attribute not in element.attrib:
            continue
        node = element.getparent()
        for name in reversed(names[:-1]):
            if node is None or node.tag != name:
                break
            node = node.getparent()
        else:
            return True
    return False
