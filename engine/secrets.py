"""Secrets at rest: salted scrypt hashes for tokens and passwords, and a lookup id to find their row.

Invariants (DESIGN §6): a token or password is never stored, only ``hash_secret``'s output
(``scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>``, a fresh random 16-byte salt each time);
``verify_secret`` compares in constant time and answers ``False`` (never raises) for a malformed or
unsupported encoding. ``secret_lookup_id`` is a short SHA-256 prefix of the secret, stored beside the
hash so a bearer token's row can be found without a full scan; it is not enough to authenticate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

SCHEME = "scrypt"
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
LOOKUP_ID_CHARS = 16
_MAX_N = 2**17  # refuse stored parameters that would make one check cost more than ~128 MiB
_MAXMEM_BYTES = 2**28  # scrypt needs about 128 * r * n bytes; a larger need fails (ValueError)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=_MAXMEM_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret(secret: str) -> str:
    """The salted scrypt hash of ``secret``, encoded ``scrypt$n$r$p$salt_b64$hash_b64``."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_secret_hash(encoded: str) -> bool:
    """Whether ``encoded`` looks like ``hash_secret``'s output (scheme and six fields)."""
    parts = encoded.split("$")
    return len(parts) == 6 and parts[0] == SCHEME and all(parts[1:])


def verify_secret(secret: str, encoded: str) -> bool:
    """Whether ``secret`` hashes to ``encoded``; constant-time compare, ``False`` on a malformed encoding."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= 64 and 0 < p <= 16 and expected):
        return False
    try:
        actual = _scrypt(secret, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def secret_lookup_id(secret: str) -> str:
    """A short SHA-256 hex prefix of ``secret``: finds the row to verify against, proves nothing alone."""
    return hashlib.sha256(secret.encode()).hexdigest()[:LOOKUP_ID_CHARS]
