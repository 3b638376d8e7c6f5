-- OAuth 2.1 / OpenID Connect state. Every secret (session id, request id, code, refresh
-- token) is stored as a keyed hash; every one-time value is consumed by a conditional update.

-- Signed-in browsers. `sid` is the public session id that goes into ID tokens.
CREATE TABLE browser_sessions (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    id_hash    TEXT   NOT NULL,
    sid        TEXT   NOT NULL,
    sub        TEXT   NOT NULL,
    auth_time  BIGINT NOT NULL,
    amr        TEXT   NOT NULL,
    acr        TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
);
CREATE INDEX browser_sessions_by_sub ON browser_sessions (tenant_id, sub);
CREATE INDEX browser_sessions_by_expiry ON browser_sessions (expires_at);

-- Authorization requests waiting for sign-in or consent, bound to the browser that made them.
CREATE TABLE authorization_requests (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    id_hash      TEXT   NOT NULL,
    binding_hash TEXT   NOT NULL,
    request      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
);

CREATE TABLE authorization_codes (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id),
    code_hash   TEXT   NOT NULL,
    grant_id    TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    grant_data  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT,
    PRIMARY KEY (tenant_id, code_hash)
);

-- Refresh tokens: each use rotates the token within its family; reuse of a rotated token
-- revokes the family.
CREATE TABLE refresh_tokens (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    token_hash TEXT   NOT NULL,
    family_id  TEXT   NOT NULL,
    grant_id   TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    sub        TEXT   NOT NULL,
    grant_data TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (tenant_id, grant_id);

-- Revoked access-token ids (`jti`) and grants (`gid`), mirrored in memory on every node.
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('jti', 'grant')),
    value      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations (expires_at);

CREATE TABLE consents (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    sub        TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    scopes     TEXT   NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sub, client_id)
);

-- Failed sign-in counters per account and per client IP, shared by every node.
CREATE TABLE login_failures (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    throttle_key TEXT   NOT NULL,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, throttle_key)
);
