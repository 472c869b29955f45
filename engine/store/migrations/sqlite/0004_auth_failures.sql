-- SFTP authentication failures per key ('partner:<code>' or 'addr:<address>'), shared by every process
-- on this store (engine.lockout): the failures counted in the current window, and the lock in force.
CREATE TABLE auth_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start TEXT NOT NULL,
    locked_until TEXT
) WITHOUT ROWID;
