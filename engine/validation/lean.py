"""The schematron stylesheets rewritten in memory at load time, for the same findings with less work.

The pinned files are never changed on disk and no rule text is kept here: each rewrite removes work whose
result no finding is read from, or puts an expression for one that always gives the same value, and
``tests/unit/test_lean_stylesheets.py`` runs every stylesheet both ways on every corpus document and
rule-test fragment and finds the same hits in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_XSL = "{http://www.w3.org/1999/XSL/Transform}"
_ACTIVE_PATTERN = f"{{{SVRL_NS}}}active-pattern"
_CATCH_ALL = "@*|node()"
_ELEMENTS_AND_ATTRIBUTES = "@*|*"
_NAME_SUFFIX = re.compile(r"ends-with\(\s*name\(\)\s*,\s*('[^':]*')\s*\)")  # a suffix without a colon


def lean(stylesheet: etree._ElementTree) -> etree._ElementTree:
    """The stylesheet without the output no finding is read from, rewritten in memory at load time.

    * ``svrl:fired-rule`` literal elements (one per rule context matched: most of the SVRL) go when they
      are empty and their attributes are plain text (nothing evaluated, so nothing that could fail).
    * The skeleton's ``<xsl:apply-templates/>`` inside ``svrl:active-pattern`` walks the whole document in
      the default mode once per pattern, and produces nothing when that mode holds only the ``/``
      template and an empty ``text()`` one (built-in rules for the rest); then it goes.
    * In a pattern's mode where only the catch-all template can match an attribute, the walk visits
      elements only (``_modes_without_attribute_rules``).
    * In a rule's match pattern, ``ends-with(name(), 'Amount')`` reads ``local-name()``: ``name()`` is
      ``prefix:local``, and a suffix without a colon ends the one iff it ends the other; the lexical
      name needs no prefix lookup. And an alternative ``//X`` reads ``X``: ``//X`` matches an X in a tree
      rooted at a document node, ``X`` any X with a parent, the same nodes in a document (what Saxon is
      given here, ``rules.run_schematron``), without the ancestor walk. The UBL and CII rules try such
      patterns on every element they walk (``//*[ends-with(name(), 'Amount') ...]``). Only templates with
      an explicit priority are rewritten (``//X``'s default priority is 0.5, ``X``'s 0).

    Asserts and reports, their tests, order, ids, flags, locations and texts are untouched: the findings
    are the same (the corpus and rule-test snapshots prove it). The asserts' guards are
    ``engine.validation.assert_guards``.
    """
    root = stylesheet.getroot()
    for fired in list(root.iter(f"{{{SVRL_NS}}}fired-rule")):
        parent = fired.getparent()
        literal = len(fired) == 0 and not (fired.text or "").strip() and "{" not in "".join(fired.attrib.values())
        if parent is not None and literal:
            parent.remove(fired)
    if _silent_default_mode(root):
        for walk in list(root.iter(f"{_XSL}apply-templates")):
            parent = walk.getparent()
            if not walk.attrib and len(walk) == 0 and parent is not None and parent.tag == _ACTIVE_PATTERN:
                parent.remove(walk)
    for template in root.iter(f"{_XSL}template"):
        match = template.get("match")
        if match and template.get("priority") is not None:  # a default priority would change with ``//``
            template.set("match", _without_leading_descendant(_NAME_SUFFIX.sub(r"ends-with(local-name(), \1)", match)))
    for mode in _modes_without_attribute_rules(root):
        for walk in root.iter(f"{_XSL}apply-templates"):
            if walk.get("mode") == mode and walk.get("select") == _ELEMENTS_AND_ATTRIBUTES:
                walk.set("select", "*")
    return stylesheet


def _without_leading_descendant(pattern: str) -> str:
    """``//a:X[p] | //b:Y`` → ``a:X[p] | b:Y``: each top-level alternative's leading ``//`` dropped
    (not ``///``, and nothing inside predicates or parentheses)."""
    bars = [i for i, char, brackets, parens in _scan(pattern) if char == "|" and not brackets and not parens]
    out = []
    for start, end in zip([-1, *bars], [*bars, len(pattern)], strict=True):
        alternative = pattern[start + 1 : end]
        text = alternative.lstrip()
        if text.startswith("//") and not text.startswith("///"):
            alternative = alternative[: len(alternative) - len(text)] + text[2:]
        out.append(alternative)
    return "|".join(out)


def _scan(pattern: str) -> Iterator[tuple[int, str, int, int]]:
    """Each character of a pattern outside its string literals, with how deep it stands in predicates
    (``[...]``) and in parentheses; a bracket or parenthesis itself stands at the outer depth."""
    brackets = parens = 0
    quote = ""
    for index, char in enumerate(pattern):
        if quote:
            quote = "" if char == quote else quote
            continue
        if char in "'\"":
            quote = char
            continue
        brackets -= char == "]"
        parens -= char == ")"
        yield index, char, brackets, parens
        brackets += char == "["
        parens += char == "("


def _modes_without_attribute_rules(root: etree._Element) -> set[str]:
    """The modes in which no template but the skeleton's catch-all can match an attribute.

    The skeleton walks each pattern's mode with ``select="@*|*"``; an attribute is then matched by the
    catch-all ``@*|node()``, whose walk of the attribute's children selects nothing: in such a mode,
    visiting attributes outputs nothing and ``select="*"`` walks the same elements in the same order.
    """
    if root.find(f"{_XSL}import") is not None or root.find(f"{_XSL}include") is not None:
        return set()
    modes: dict[str, bool] = {}
    for template in root.iter(f"{_XSL}template"):
        mode, match = template.get("mode"), template.get("match")
        if mode is None or match is None:
            continue
        if " " in mode.strip() or mode.startswith("#"):
            return set()  # a template in several modes: not the skeleton's shape
        may_match_attribute = match != _CATCH_ALL and _names_attributes(match)
        modes[mode] = modes.get(mode, True) and not may_match_attribute
        if match == _CATCH_ALL and not _is_plain_catch_all(template, mode):
            modes[mode] = False
    return {mode for mode, clean in modes.items() if clean}


def _names_attributes(pattern: str) -> bool:
    """Whether a match pattern, predicates left out, has an attribute step (or could: ``node()`` on the
    attribute axis, an unusual form)."""
    text = "".join(char for _, char, brackets, _ in _scan(pattern) if not brackets)
    return "@" in text or "attribute::" in text or "attribute(" in text


def _is_plain_catch_all(template: etree._Element, mode: str) -> bool:
    body = [child for child in template if isinstance(child.tag, str)]
    return (
        len(body) == 1
        and body[0].tag == f"{_XSL}apply-templates"
        and body[0].get("mode") == mode
        and body[0].get("select") == _ELEMENTS_AND_ATTRIBUTES
        and len(body[0]) == 0
    )


def _silent_default_mode(root: etree._Element) -> bool:
    """True when the default mode has only the ``/`` template and an empty ``text()`` one, in a
    stylesheet that imports nothing (so walking the document in that mode outputs nothing)."""
    if root.get("default-mode") or root.find(f"{_XSL}import") is not None or root.find(f"{_XSL}include") is not None:
        return False
    matches = [t.get("match") for t in root.iter(f"{_XSL}template") if t.get("match") and not t.get("mode")]
    texts = [t for t in root.iter(f"{_XSL}template") if t.get("match") == "text()" and not t.get("mode")]
    return sorted(matches) == ["/", "text()"] and all(len(t) == 0 and not (t.text or "").strip() for t in texts)
