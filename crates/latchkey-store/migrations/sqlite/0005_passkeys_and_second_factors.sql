-- Passkeys, TOTP, recovery codes, sign-up invitations, and the short-lived state of
-- WebAuthn ceremonies and half-finished sign-ins.

-- The WebAuthn user handle: random (a UUID), carrying no personal data; given to a user
-- with their first passkey.
ALTER TABLE users ADD COLUMN webauthn_user_id TEXT;
CREATE UNIQUE INDEX users_by_webauthn_id ON users (tenant_id, webauthn_user_id) WHERE webauthn_user_id IS NOT NULL;

-- An unverified email address claims nothing: sign-up must never reveal that an address is
-- in use, so only verified addresses are unique.
DROP INDEX users_email;
CREATE UNIQUE INDEX users_verified_email ON users (tenant_id, email) WHERE email IS NOT NULL AND email_verified;
CREATE INDEX users_by_email ON users (tenant_id, email);

CREATE TABLE passkeys (
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id),
    credential_id   TEXT    NOT NULL, -- base64url, as the browser reports it
    sub             TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    credential      TEXT    NOT NULL, -- the public key and its flags (webauthn-rs Passkey, JSON)
    sign_count      BIGINT  NOT NULL DEFAULT 0,
    backup_eligible BOOLEAN NOT NULL,
    backup_state    BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_used_at    BIGINT,
    PRIMARY KEY (tenant_id, credential_id)
);
CREATE INDEX passkeys_by_user ON passkeys (tenant_id, sub);

-- One authenticator app per user; the secret is sealed under the master key. A code's step
-- is used once: `last_used_step` only grows.
CREATE TABLE totp_factors (
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id),
    sub            TEXT    NOT NULL,
    secret_sealed  TEXT    NOT NULL,
    confirmed      BOOLEAN NOT NULL DEFAULT FALSE,
    last_used_step BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, sub)
);

CREATE TABLE recovery_codes (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    sub        TEXT   NOT NULL,
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (tenant_id, sub, code_hash)
);

-- Bound to one browser by a cookie secret (stored as its hash), taken once, short-lived:
-- any node finishes what another started.
CREATE TABLE auth_ceremonies (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    id_hash    TEXT   NOT NULL,
    purpose    TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id_hash, purpose)
);
CREATE INDEX auth_ceremonies_expiry ON auth_ceremonies (expires_at);

-- Sign-up invitations (registration = "invite"): single use, stored hashed.
CREATE TABLE invitations (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    token_hash TEXT   NOT NULL,
    id         TEXT   NOT NULL, -- public, to list and revoke
    note       TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    used_by    TEXT,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE UNIQUE INDEX invitations_by_id ON invitations (tenant_id, id);
