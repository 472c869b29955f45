"""``fluxdepot rulesets``: the rulesets this installation knows and the state of each artefact they run.

Each artefact is read and hashed: it is "installed" only when its sha256 (and that of every file it loads)
is the pinned one. Exit 0 when the configured ruleset (``--config``: its ``[rules] ruleset``; else
``en16931``) is installed, 1 when it is not (``fluxdepot serve`` would refuse to start), 2 on a usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from engine.model import Rules
from engine.validation.rulesets import RulesetState, artefacts_folder, status
from gateway.settings import SettingsError, load_settings

EXIT_OK, EXIT_MISSING, EXIT_USAGE = 0, 1, 2


def run_rulesets(config: str | None, *, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    rules = Rules()
    if config:
        try:
            rules = load_settings(Path(config)).engine_rules
        except SettingsError as exc:
            print(f"fluxdepot rulesets: {exc}", file=err)
            return EXIT_USAGE
    states = status(rules.artefacts_dir)
    if as_json:
        out.write(json.dumps([_as_dict(s, s.ruleset is rules.ruleset) for s in states], indent=2) + "\n")
    else:
        out.write(_as_text(states, rules))
    chosen = next(s for s in states if s.ruleset is rules.ruleset)
    return EXIT_OK if chosen.installed else EXIT_MISSING


def _as_dict(state: RulesetState, configured: bool) -> dict[str, Any]:
    return {
        "ruleset": state.ruleset.value,
        "configured": configured,
        "installed": state.installed,
        "artefacts": [
            {
                "name": a.artefact.spec.label,
                "version": a.artefact.spec.version,
                "sha256": a.artefact.spec.sha256,
                "source": a.artefact.spec.source.value,
                "path": str(a.path) if a.path else None,
                "installed": a.installed,
                "problem": a.problem,
            }
            for a in state.artefacts
        ],
    }


def _as_text(states: tuple[RulesetState, ...], rules: Rules) -> str:
    lines = []
    for state in states:
        configured = " (configured)" if state.ruleset is rules.ruleset else ""
        lines.append(f"{state.ruleset.value}{configured}: {'installed' if state.installed else 'NOT INSTALLED'}")
        for a in state.artefacts:
            spec = a.artefact.spec
            lines.append(f"  {'ok ' if a.installed else 'BAD'} {spec.label} {spec.version} sha256:{spec.sha256}")
            lines.append(f"      {a.problem or a.path} [{spec.source.value}]")
    lines.append(f"Downloaded artefacts folder: {artefacts_folder(rules)}")
    if not all(s.installed for s in states):
        lines.append(
            "Install the missing artefacts with `make setup` or `python -m engine.validation.fetch_artefacts`."
        )
    return "\n".join(lines) + "\n"
