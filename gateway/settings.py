"""Settings read from the TOML config file (DESIGN §3, STYLE rule 13).

This first version reads what ``fluxdepot check`` needs (directory file, limits, gateway code); every
problem is collected and reported together, each naming its key and the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.model import Limits


class SettingsError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    source: Path
    environment: str
    gateway_code: str
    directory_file: Path | None
    limits: Limits
    workers: int
    lease_s: float


def load_settings(path: Path) -> Settings:
    problems: list[str] = []
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError([f"{path}: cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"{path}: not valid TOML: {exc}"]) from None

    def section(name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            problems.append(f"{path}: [{name}] must be a table")
            return {}
        return value

    environment = str(raw.get("environment", "production"))
    if environment not in ("demo", "production"):
        problems.append(f"{path}: environment: must be 'demo' or 'production', not {environment!r}")
    directory = section("directory").get("file")
    directory_file = (path.parent / str(directory)).resolve() if directory else None
    limits_raw = section("limits")
    limits_kwargs: dict[str, Any] = {}
    for f in fields(Limits):
        if f.name in limits_raw:
            value = limits_raw[f.name]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                problems.append(f"{path}: limits.{f.name}: must be a positive number, not {value!r}")
            else:
                limits_kwargs[f.name] = value
    unknown = set(limits_raw) - {f.name for f in fields(Limits)}
    problems.extend(f"{path}: limits.{k}: unknown key" for k in sorted(unknown))
    workers_raw = section("workers")
    workers = workers_raw.get("count", os.cpu_count() or 1)
    if problems:
        raise SettingsError(problems)
    return Settings(
        source=path,
        environment=environment,
        gateway_code=str(section("gateway").get("code", "CPP001")),
        directory_file=directory_file,
        limits=Limits(**limits_kwargs),
        workers=int(workers),
        lease_s=float(workers_raw.get("lease_s", 30)),
    )
