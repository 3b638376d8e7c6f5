-- An ended browser session is revoked too: forward-auth cookies name their session, and
-- every node learns of the end through the revocation poll. SQLite cannot change a CHECK
-- constraint, so the table is rebuilt with its rows and sequence.
CREATE TABLE revocations_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('jti', 'grant', 'session')),
    value      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO revocations_new (seq, tenant_id, kind, value, expires_at)
    SELECT seq, tenant_id, kind, value, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
