-- A service account is a user that never signs in: no password, no passkey; it holds roles
-- and API keys.
ALTER TABLE users ADD COLUMN service_account BOOLEAN NOT NULL DEFAULT FALSE;

-- API keys: looked up by key id, the secret kept only as a keyed hash (HMAC-SHA-256).
-- A key goes with its owner.
CREATE TABLE api_keys (
    tenant_id            TEXT   NOT NULL,
    key_id               TEXT   NOT NULL,
    owner_sub            TEXT   NOT NULL,
    name                 TEXT   NOT NULL,
    secret_hash          TEXT   NOT NULL,
    previous_secret_hash TEXT,
    previous_valid_until BIGINT,
    scopes               TEXT   NOT NULL,
    routes               TEXT   NOT NULL DEFAULT '[]',
    methods              TEXT   NOT NULL DEFAULT '[]',
    audience             TEXT,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT,
    last_used_at         BIGINT,
    revoked_at           BIGINT,
    PRIMARY KEY (tenant_id, key_id),
    FOREIGN KEY (tenant_id, owner_sub) REFERENCES users (tenant_id, sub) ON DELETE CASCADE
);
CREATE INDEX api_keys_by_owner ON api_keys (tenant_id, owner_sub);
-- A name is an owner's handle on a key: one live key per name.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, owner_sub, name) WHERE revoked_at IS NULL;
