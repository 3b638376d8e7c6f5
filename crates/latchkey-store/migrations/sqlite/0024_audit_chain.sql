-- The tamper-evident audit log. An entry is written in the transaction of the change it
-- records, already pseudonymised and encrypted, with no place in the chain yet; the
-- chain's one writer (the sealer, under the chain row's lock) then gives each entry its
-- position and its MAC, which covers the previous entry's MAC. Nothing in an entry is
-- personal data in clear: actor and target are keyed pseudonyms, and the rest is sealed
-- under the key of the entry's subject (audit_subject_keys), which erasure deletes.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    seq        BIGINT,
    at         BIGINT NOT NULL,
    action     TEXT   NOT NULL,
    actor_ref  TEXT   NOT NULL,
    target_ref TEXT   NOT NULL,
    sealed     TEXT   NOT NULL,
    -- Written with the entry: an HMAC over a random nonce and every field above, so a
    -- waiting row forged or altered in the database is found, and a copied one is refused.
    nonce      TEXT   NOT NULL,
    entry_mac  TEXT   NOT NULL,
    mac        TEXT
);
CREATE UNIQUE INDEX audit_log_entry_mac ON audit_log (entry_mac);
CREATE UNIQUE INDEX audit_log_position ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_unsealed ON audit_log (tenant_id, id) WHERE seq IS NULL;
CREATE INDEX audit_log_by_actor ON audit_log (tenant_id, actor_ref, id);
CREATE INDEX audit_log_by_target ON audit_log (tenant_id, target_ref, id);
CREATE INDEX audit_log_by_action ON audit_log (tenant_id, action, id);
CREATE INDEX audit_log_by_time ON audit_log (tenant_id, at);

-- One row per tenant: the chain's head (the newest entry's position and MAC), the newest
-- checkpoint, and the base retention left (the position and MAC the oldest kept entry
-- follows, signed so it cannot be moved).
CREATE TABLE audit_chains (
    tenant_id      TEXT   PRIMARY KEY REFERENCES tenants (id),
    seq            BIGINT NOT NULL,
    mac            TEXT   NOT NULL,
    checkpoint_at  BIGINT NOT NULL DEFAULT 0,
    base_seq       BIGINT NOT NULL DEFAULT 0,
    base_mac       TEXT,
    base_at        BIGINT,
    base_signature TEXT
);

-- A subject's salt: with the master key it gives the key their entries are sealed under.
-- Erasure clears the salt and keeps the row, so later entries about the erased subject are
-- stored without content instead of under a new key.
CREATE TABLE audit_subject_keys (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    subject_ref TEXT NOT NULL,
    salt        TEXT,
    erased_at   BIGINT,
    PRIMARY KEY (tenant_id, subject_ref)
);
