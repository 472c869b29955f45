"""``fluxdepot-cli`` before it reaches a server: version, usage errors, help and shell completion.

Each test runs the CLI as a subprocess (the module, as the console script does); none of these paths
opens a connection, and the target given (a closed port) proves it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from clients.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CLOSED = "127.0.0.1:1"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLUXDEPOT_")}
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "--target", CLOSED, *args],
        capture_output=True, text=True, env=environ, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip


def test_version_is_the_installed_package_version() -> None:
    """--version prints the program and the installed package's version, and exits 0."""
    run = cli("--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"fluxdepot-cli {metadata.version('fluxdepot')}"


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [(["serch"], "search"), (["dashbord"], "dashboard"), (["admin", "grant-profil", "x", "y"], "grant-profile")],
)
def test_a_mistyped_command_gets_the_nearest_one(args: list[str], suggestion: str) -> None:
    """A mistyped command or admin action is a usage error (exit 2) that names the nearest command."""
    run = cli(*args)
    assert run.returncode == 2
    assert f"did you mean {suggestion!r}?" in run.stderr
    assert run.stdout == ""


def test_a_command_nothing_resembles_keeps_the_list_of_choices() -> None:
    """With no close command, the usage error lists the commands instead of guessing."""
    run = cli("xyzzy")
    assert run.returncode == 2
    assert "did you mean" not in run.stderr and "choose from" in run.stderr and "'search'" in run.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["search", "--from", "2026-02-01", "--to", "2026-01-01"],
        ["export", "--from", "2026-02-01T10:00:00+00:00", "--to", "2026-02-01T09:00:00+00:00"],
        ["dashboard", "--from", "2026-03-01", "--to", "2026-01-01"],
        ["admin", "rejects", "--from", "2026-03-01", "--to", "2026-01-01"],
    ],
)
def test_from_after_to_is_a_one_line_usage_error(args: list[str]) -> None:
    """--from after --to is refused before any call: exit 2 and one line naming both bounds."""
    run = cli(*args)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert re.fullmatch(r"fluxdepot-cli: error: --from \S+ is after --to \S+", lines[0]), lines[0]


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_positional_argument_has_help() -> None:
    """Every positional argument of every command and admin action is described in its --help."""
    undocumented = [
        f"{p.prog} {a.metavar or a.dest}"
        for p in _parsers(build_parser())
        for a in p._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert undocumented == []
    run = cli("admin", "create-technical-user", "--help")
    assert run.returncode == 0
    positionals = run.stdout.split("positional arguments:")[1].split("options:")[0]
    assert re.search(r"^\s+login\s+\S", positionals, re.MULTILINE)
    assert re.search(r"^\s+siret\s+\S", positionals, re.MULTILINE)


def test_bash_completion_completes_commands_actions_and_choices(tmp_path: Path) -> None:
    """`completion bash` prints a script that bash loads and that completes commands, admin actions and
    choices (asked the way bash asks a completion function)."""
    run = cli("completion", "bash")
    assert run.returncode == 0, run.stderr
    script = tmp_path / "fluxdepot-cli.bash"
    script.write_text(run.stdout)

    def complete(*words: str) -> set[str]:
        line = " ".join(("fluxdepot-cli", *words))
        probe = (
            f"source {script}\n"
            f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
            f"COMP_WORDS=(fluxdepot-cli {' '.join(words)}); COMP_CWORD={len(words)}\n"
            "_shtab_fluxdepot_cli fluxdepot-cli\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=True)
        return {w.strip() for w in done.stdout.splitlines() if w.strip()}

    assert complete("se") == {"search"}
    assert complete("admin", "create-t") == {"create-technical-user", "create-token"}
    assert complete("completion", "") == {"bash", "zsh"}
    assert "--rotate" in complete("admin", "create-technical-user", "--ro")


def test_zsh_completion_script_names_every_command() -> None:
    """`completion zsh` prints a zsh completion script (#compdef) naming every command and admin action;
    an unknown shell is a usage error."""
    run = cli("completion", "zsh")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("#compdef fluxdepot-cli")
    for name in ("deposit", "search", "dashboard", "watch", "create-technical-user", "--rotate", "--timeout"):
        assert name in run.stdout
    assert cli("completion", "fish").returncode == 2
