-- Single-use tokens sent to people (email verification links, recovery links and codes):
-- only their keyed hash is kept, bound to a purpose and a subject, with what they are about
-- (the address being verified). Used once: `used_at` is set by the one statement that
-- consumes it.
CREATE TABLE one_time_tokens (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    token_hash TEXT   NOT NULL,
    purpose    TEXT   NOT NULL,
    sub        TEXT   NOT NULL,
    detail     TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, sub) REFERENCES users (tenant_id, sub) ON DELETE CASCADE
);
CREATE INDEX one_time_tokens_by_subject ON one_time_tokens (tenant_id, sub, purpose, created_at);
CREATE INDEX one_time_tokens_by_expiry ON one_time_tokens (expires_at);
