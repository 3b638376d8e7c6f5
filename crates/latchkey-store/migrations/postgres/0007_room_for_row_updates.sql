-- Room on each page for the next version of a row, on the tables whose rows are updated
-- soon after they are written: a refresh token is marked rotated (and maybe revoked), a
-- code consumed, a session touched. None of those columns is indexed, so PostgreSQL can
-- write the new version on the same page without touching any index (a HOT update), but
-- only if the page has room. Filled to 100 % by inserts it had none, and each such update
-- wrote a new entry into every index of the table: five for refresh_tokens, on every
-- rotation. Pages filled to 70 % keep the room; the versions a HOT update leaves behind are
-- pruned from the page as it is read, so the room comes back. Applies to pages written
-- from now on.
ALTER TABLE refresh_tokens SET (fillfactor = 70);
ALTER TABLE authorization_codes SET (fillfactor = 70);
ALTER TABLE browser_sessions SET (fillfactor = 70);
