"""Refuse demo secrets in production: a directory file for ``environment = "production"`` must not carry
plaintext tokens or passwords (only ``token_hash`` / ``password_hash``), nor the demo key pair.

Pure reading of the TOML text; the daemon turns the problems into a configuration error (exit 78).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEMO_KEY_MARK = "DEMO ONLY"  # the comment of config/demo/AAA001_ed25519.pub
# The portal's demo passwords (demo-manager-password, demo-viewer-password) as config/demo/directory.toml
# hashes them: a salted hash is recognised by its text, so these exact values are refused.
DEMO_PASSWORD_HASHES = frozenset(
    {
        "$argon2id$v=19$m=65536,t=3,p=4$Ql3P0xYs0wkW/VoRTsk7Qg$zgTqmTuxouVqzo9pSjq7z7MY+j0bXByTzlKBCxoWg4U",
        "$argon2id$v=19$m=65536,t=3,p=4$n1iCgpO4CwgMr0/o/yaJzA$3i9mEaVVsw4FF1Ba1mq8cmVHk3NWWiV0hpp9wLOCbLA",
    }
)


def demo_secrets_in(path: Path) -> list[str]:
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # the directory loader reports unreadable files with their own message
    problems: list[str] = []
    for table in ("users", "technical_users", "partners"):
        for i, entry in enumerate(raw.get(table) or []):
            if not isinstance(entry, dict):
                continue
            for key in ("token", "password"):
                if key in entry:
                    problems.append(
                        f"{path}: {table}[{i}].{key}: plaintext secrets are refused in production "
                        f"(store {key}_hash instead)"
                    )
            if entry.get("password_hash") in DEMO_PASSWORD_HASHES:
                problems.append(
                    f"{path}: {table}[{i}].password_hash: the demo portal password is refused in production"
                )
            keys = [str(k) for k in entry.get("public_keys") or []]
            for name in entry.get("public_key_files") or []:
                try:
                    keys.append((path.parent / str(name)).read_text(encoding="utf-8"))
                except OSError:
                    continue
            if any(DEMO_KEY_MARK in k for k in keys):
                problems.append(f"{path}: {table}[{i}]: the demo key pair is refused in production")
    return problems
