-- Per-client settings for private_key_jwt, PKCE relaxation and token lifetimes; resource
-- servers (RFC 8707); and the replay store for client assertion ids (RFC 7523 §3).

ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
ALTER TABLE clients ADD COLUMN allow_insecure_no_pkce BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN access_token_lifetime BIGINT;

CREATE TABLE resource_servers (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    identifier TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    scopes     TEXT   NOT NULL,
    -- The client the API authenticates as when it introspects tokens issued for it.
    client_id  TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, identifier)
);

CREATE TABLE assertion_jtis (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    client_id  TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, client_id, jti)
);
