-- The outbox: emails and text messages written with the change that causes them, sent by
-- any node. The recipient and content are sealed under the master key; a message is deleted
-- once sent, or given up, or past its expiry.
CREATE TABLE outbox (
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    id              TEXT   NOT NULL,
    channel         TEXT   NOT NULL CHECK (channel IN ('email', 'sms')),
    kind            TEXT   NOT NULL,
    sealed          BYTEA  NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_due ON outbox (channel, next_attempt_at);
CREATE INDEX outbox_by_expiry ON outbox (expires_at);
