"""Secrets at rest: salted scrypt hashes, constant-time verification, lookup ids."""

from __future__ import annotations

import pytest

from engine.secrets import hash_secret, is_secret_hash, secret_lookup_id, verify_secret


def test_hash_is_salted_and_verifies() -> None:
    """The same secret hashes differently each time, never contains the secret, and verifies."""
    first, second = hash_secret("demo-token"), hash_secret("demo-token")
    assert first != second
    assert "demo-token" not in first
    assert first.startswith("scrypt$16384$8$1$") and is_secret_hash(first)
    assert verify_secret("demo-token", first) and verify_secret("demo-token", second)
    assert not verify_secret("demo-tokeN", first)
    assert not verify_secret("", first)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain",
        "bcrypt$1$2$3$4$5",
        "scrypt$x$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$!!$aGFzaA==",
        "scrypt$1000$8$1$c2FsdA==$aGFzaA==",
        "scrypt$1073741824$8$1$c2FsdA==$aGFzaA==",
        "scrypt$16384$8$1$c2FsdA==$",
    ],
)
def test_malformed_encoding_never_verifies(encoded: str) -> None:
    """A malformed, foreign or too costly encoding answers False instead of raising."""
    assert not verify_secret("anything", encoded)


def test_lookup_id_is_stable_and_short() -> None:
    """The lookup id is a stable 16-hex-char prefix that differs between secrets."""
    assert secret_lookup_id("a") == secret_lookup_id("a")
    assert secret_lookup_id("a") != secret_lookup_id("b")
    assert len(secret_lookup_id("a")) == 16 and int(secret_lookup_id("a"), 16) >= 0
