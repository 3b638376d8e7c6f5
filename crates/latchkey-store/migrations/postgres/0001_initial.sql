-- Latchkey schema, version 1 (PostgreSQL). Every tenant-owned row carries tenant_id, and
-- uniqueness is per tenant. Timestamps are Unix seconds. Secrets are stored as keyed hashes;
-- private keys sealed under the master key.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
INSERT INTO tenants (id, created_at) VALUES ('default', 0);

-- Installation-wide facts, e.g. the check value that proves the master key is the right one.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id),
    sub            TEXT    NOT NULL,
    username       TEXT    NOT NULL,
    email          TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name           TEXT,
    profile        TEXT    NOT NULL DEFAULT '{}',
    password_hash  TEXT,
    locked         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, sub),
    UNIQUE (tenant_id, username)
);
CREATE UNIQUE INDEX users_email ON users (tenant_id, email) WHERE email IS NOT NULL;

CREATE TABLE clients (
    tenant_id                  TEXT    NOT NULL REFERENCES tenants (id),
    client_id                  TEXT    NOT NULL,
    name                       TEXT    NOT NULL,
    kind                       TEXT    NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash                TEXT,
    previous_secret_hash       TEXT,
    previous_secret_expires_at BIGINT,
    redirect_uris              TEXT    NOT NULL,
    post_logout_redirect_uris  TEXT    NOT NULL,
    grant_types                TEXT    NOT NULL,
    allowed_scopes             TEXT    NOT NULL,
    auth_method                TEXT    NOT NULL,
    id_token_alg               TEXT    NOT NULL,
    first_party                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                 BIGINT  NOT NULL,
    updated_at                 BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);

CREATE TABLE scopes (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    built_in    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
INSERT INTO scopes (tenant_id, name, description, built_in, created_at) VALUES
    ('default', 'openid', 'Sign you in', TRUE, 0),
    ('default', 'profile', 'Your name and basic profile', TRUE, 0),
    ('default', 'email', 'Your email address', TRUE, 0),
    ('default', 'phone', 'Your phone number', TRUE, 0),
    ('default', 'address', 'Your postal address', TRUE, 0),
    ('default', 'offline_access', 'Stay connected while you are away', TRUE, 0);

-- Signing keys: per tenant and algorithm one 'active' key, one 'next' key (published before
-- it signs), and 'retired' keys published until publish_until.
CREATE TABLE signing_keys (
    tenant_id     TEXT   NOT NULL REFERENCES tenants (id),
    kid           TEXT   NOT NULL,
    alg           TEXT   NOT NULL,
    state         TEXT   NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    private_key   BYTEA  NOT NULL,
    public_jwk    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT,
    retired_at    BIGINT,
    publish_until BIGINT,
    PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (tenant_id, alg) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (tenant_id, alg) WHERE state = 'next';

CREATE TABLE audit_events (
    id        BIGSERIAL PRIMARY KEY,
    tenant_id TEXT   NOT NULL REFERENCES tenants (id),
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    target    TEXT   NOT NULL,
    details   TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_by_time ON audit_events (tenant_id, at);
