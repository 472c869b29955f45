-- SFTP authentication failures per key ('partner:<code>' or 'addr:<address>'), shared by every daemon on
-- this database (engine.lockout): the failures counted in the current window, and the lock in force.
CREATE TABLE auth_failures (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);
