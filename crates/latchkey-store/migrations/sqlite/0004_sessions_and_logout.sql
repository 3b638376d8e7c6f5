-- Single sign-on sessions and the OIDC logout channels.

-- Idle expiry, "keep me signed in", and what the account page shows about each session.
ALTER TABLE browser_sessions ADD COLUMN last_active_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE browser_sessions ADD COLUMN remember BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE browser_sessions ADD COLUMN user_agent TEXT;
ALTER TABLE browser_sessions ADD COLUMN ip TEXT;
UPDATE browser_sessions SET last_active_at = created_at;
CREATE UNIQUE INDEX browser_sessions_by_sid ON browser_sessions (tenant_id, sid);

-- The clients each session signed into: who hears of its end.
CREATE TABLE session_clients (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    sid         TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    backchannel BOOLEAN NOT NULL,
    first_at    BIGINT  NOT NULL,
    last_at     BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, sid, client_id)
);

-- Refresh tokens remember their session; those that end with it are revoked at logout.
ALTER TABLE refresh_tokens ADD COLUMN sid TEXT;
ALTER TABLE refresh_tokens ADD COLUMN ends_with_session BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX refresh_tokens_by_sid ON refresh_tokens (tenant_id, sid);
CREATE INDEX refresh_tokens_by_sub ON refresh_tokens (tenant_id, sub);

-- Per-client session and logout settings (a JSON document the store keeps whole).
ALTER TABLE clients ADD COLUMN session_policy TEXT NOT NULL DEFAULT '{}';

-- Back-channel logout tokens waiting for delivery: queued in the same transaction that
-- ends the session, so a restart loses none; retried with backoff.
CREATE TABLE logout_deliveries (
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    jti             TEXT   NOT NULL,
    client_id       TEXT   NOT NULL,
    sub             TEXT   NOT NULL,
    sid             TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    PRIMARY KEY (tenant_id, jti)
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (status, next_attempt_at);
