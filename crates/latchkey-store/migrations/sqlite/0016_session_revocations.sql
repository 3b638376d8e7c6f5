-- An ended browser session and a revoked API key go into the revocation set too: every
-- node learns of them through the revocation poll, as of a revoked token (forward-auth
-- cookies name their session). SQLite cannot change a CHECK
-- constraint, so the table is rebuilt with its rows and sequence.
CREATE TABLE revocations_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('jti', 'grant', 'session', 'api_key')),
    value      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO revocations_new (seq, tenant_id, kind, value, expires_at)
    SELECT seq, tenant_id, kind, value, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
