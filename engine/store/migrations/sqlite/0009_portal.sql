-- The web portal (gateway/http/portal): users log in with a password (argon2id hash from the directory
-- file) and hold server-side sessions. A session row is keyed by the SHA-256 of the random id its cookie
-- carries (the id itself is never stored); csrf_secret is the token every form of the session posts back.
ALTER TABLE users ADD COLUMN password_hash TEXT;

CREATE TABLE portal_sessions (
    id_hash      TEXT PRIMARY KEY,
    login        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    csrf_secret  TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX portal_sessions_login ON portal_sessions (login);
CREATE INDEX portal_sessions_last_seen ON portal_sessions (last_seen_at);
