"""Access tokens (``engine.services.oauth``): signed with the folder's key, short-lived, technical only;
anything altered, unsigned or signed by another key is refused."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from engine.services.oauth import AccessTokens, looks_like_access_token

KEY = b"k" * 32


def test_a_token_verifies_until_it_expires() -> None:
    now = [1_000_000.0]
    tokens = AccessTokens(KEY, ttl_s=900, clock=lambda: now[0])
    issued = tokens.issue("TECH_1")
    assert looks_like_access_token(issued.token) and not looks_like_access_token("demo-technical-token")
    assert tokens.verify(issued.token) == ("TECH_1", 900.0)
    now[0] += 899
    assert tokens.verify(issued.token) == ("TECH_1", 1.0)
    now[0] += 10  # past expiry and the 5 s leeway
    assert tokens.verify(issued.token) is None


def test_altered_unsigned_and_foreign_tokens_are_refused() -> None:
    tokens = AccessTokens(KEY, ttl_s=900)
    token = tokens.issue("TECH_1").token
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "SOMEONE_ELSE"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert tokens.verify(f"{head}.{altered}.{signature}") is None
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert tokens.verify(unsigned) is None
    assert tokens.verify(AccessTokens(b"x" * 32, ttl_s=900).issue("TECH_1").token) is None
    user_claims = {**claims, "sub": "TECH_1", "kind": "user"}
    assert tokens.verify(jwt.encode(user_claims, KEY, algorithm="HS256")) is None
    assert tokens.verify("a.b.c") is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AccessTokens(b"short", ttl_s=60)
