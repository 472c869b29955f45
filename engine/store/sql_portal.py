"""The SQL of the web portal's log-ins, sessions and user lists, for both dialects (migration 0009).

Run by ``engine.store.portal_sessions``; named parameters only (``engine.store.sql``). A session row is
keyed by ``id_hash``, the SHA-256 (hex) of the random id the session cookie carries.
"""

from __future__ import annotations

from engine.store.sql import both

# A directory import sets every imported user's password hash (None: that user cannot log in).
SET_USER_PASSWORD = both("UPDATE users SET password_hash = :password_hash WHERE login = :login")
USER_PASSWORD = both("SELECT password_hash FROM users WHERE login = :login")

INSERT_SESSION = both("""
INSERT INTO portal_sessions (id_hash, login, created_at, last_seen_at, csrf_secret)
VALUES (:id_hash, :login, :now, :now, :csrf_secret)
""")
GET_SESSION = both("SELECT login, created_at, last_seen_at, csrf_secret FROM portal_sessions WHERE id_hash = :id_hash")
TOUCH_SESSION = both("UPDATE portal_sessions SET last_seen_at = :now WHERE id_hash = :id_hash")
DELETE_SESSION = both("DELETE FROM portal_sessions WHERE id_hash = :id_hash")
DELETE_USER_SESSIONS = both("DELETE FROM portal_sessions WHERE login = :login")
DELETE_EXPIRED_SESSIONS = both(
    "DELETE FROM portal_sessions WHERE last_seen_at < :idle_before OR created_at < :created_before"
)

# Manage user permissions: the members of a structure, and the profiles each holds on it.
STRUCTURE_MEMBERS = both("""
SELECT m.login, COALESCE(u.name, '') AS name, m.role
FROM memberships m LEFT JOIN users u ON u.login = m.login
WHERE m.siret = :siret ORDER BY m.login
""")
STRUCTURE_PROFILES = both("SELECT login, profile FROM profiles WHERE siret = :siret ORDER BY login, profile")
