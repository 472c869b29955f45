-- SFTP lockouts back off (engine.lockout): a key locked again soon after its last lock is locked for twice
-- as long. strikes counts a key's locks; it is forgotten a window after the last lock ended. Keys are now
-- also 'pair:<code>@<source>' (a partner from one source address), counted per attempt.
ALTER TABLE auth_failures ADD COLUMN strikes INTEGER NOT NULL DEFAULT 0;
