-- Withdrawing a consent refuses every access token its client got for the user until then:
-- a 'consent' revocation names "client_id sub" and holds the time tokens issued before it
-- (up to and including it) are refused. SQLite cannot change a CHECK constraint, so the
-- table is rebuilt with its rows and sequence.
CREATE TABLE revocations_new (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT   NOT NULL REFERENCES tenants (id),
    kind          TEXT   NOT NULL CHECK (kind IN ('jti', 'grant', 'session', 'api_key', 'consent')),
    value         TEXT   NOT NULL,
    expires_at    BIGINT NOT NULL,
    issued_before BIGINT
);
INSERT INTO revocations_new (seq, tenant_id, kind, value, expires_at)
    SELECT seq, tenant_id, kind, value, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
