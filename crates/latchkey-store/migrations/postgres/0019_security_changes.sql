-- When the password was last set (NULL: never, or removed), so that "this wasn't me" can
-- take back a password set after the change it disowns; and since when the account's
-- owner reported a change they did not make: until they recover the account, its pages
-- change nothing.
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
ALTER TABLE users ADD COLUMN changes_blocked_at BIGINT;
