"""Whether a ruleset can run here: the state of each artefact it needs, and the daemon's start check.

``status`` answers ``fluxdepot rulesets``; ``require_artefacts`` is what the daemon calls before it starts
anything: a missing, unreadable or altered artefact of the configured ruleset stops the start with
``ArtefactsNotInstalled`` (one line saying how to install them), never a daemon that puts every flow in
WARNING. ``ruleset_problem`` is the same check for a ruleset a depositor is about to be given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from engine.model import Rules, Ruleset
from engine.validation.artefacts import (
    Artefact,
    ArtefactError,
    ArtefactsNotInstalled,
    default_artefacts_dir,
    location,
    problems_of,
)
from engine.validation.routes import artefacts_of


@dataclass(frozen=True)
class ArtefactState:
    artefact: Artefact
    path: Path | None
    problem: str | None  # None: installed, as pinned

    @property
    def installed(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class RulesetState:
    ruleset: Ruleset
    artefacts: tuple[ArtefactState, ...]

    @property
    def installed(self) -> bool:
        return all(a.installed for a in self.artefacts)


def status(artefacts_dir: str | None = None) -> tuple[RulesetState, ...]:
    """Every ruleset, each with the state of every artefact it needs (each file read and hashed)."""
    states: dict[Artefact, ArtefactState] = {}
    for artefact in Artefact:
        problems = problems_of((artefact,), artefacts_dir)
        try:
            path: Path | None = location(artefact, artefacts_dir)
        except ArtefactError:
            path = None
        states[artefact] = ArtefactState(artefact, path, problems[0].problem if problems else None)
    return tuple(RulesetState(r, tuple(states[a] for a in artefacts_of(r))) for r in Ruleset)


def require_artefacts(rules: Rules) -> None:
    """Raise ``ArtefactsNotInstalled`` unless every artefact of ``rules.ruleset`` is installed as pinned."""
    problems = problems_of(artefacts_of(rules.ruleset), rules.artefacts_dir)
    if problems:
        raise ArtefactsNotInstalled(problems, rules.artefacts_dir)


def ruleset_problem(rules: Rules, ruleset: Ruleset) -> str | None:
    """Why ``ruleset`` cannot run with the artefacts of ``rules``' folder (``require_artefacts``' one line:
    its first missing, unreadable or altered artefact, and how to install them), or None when it can."""
    try:
        require_artefacts(replace(rules, ruleset=ruleset))
    except ArtefactsNotInstalled as exc:
        return str(exc)
    return None


def artefacts_folder(rules: Rules) -> Path:
    """Where the downloaded artefacts of ``rules`` are looked for."""
    return Path(rules.artefacts_dir) if rules.artefacts_dir else default_artefacts_dir()
