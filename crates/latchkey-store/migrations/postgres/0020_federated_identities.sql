-- Accounts at upstream identity providers linked to users: found by the provider's id and
-- the stable key of the account there (never by an address), one link per upstream account.
CREATE TABLE federated_identities (
    tenant_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    sub TEXT NOT NULL,
    email TEXT,
    linked_at BIGINT NOT NULL,
    last_used_at BIGINT,
    PRIMARY KEY (tenant_id, provider_id, subject),
    FOREIGN KEY (tenant_id, sub) REFERENCES users (tenant_id, sub) ON DELETE CASCADE
);
-- One account per provider and user: the security page links and unlinks by provider.
CREATE UNIQUE INDEX federated_identities_by_user ON federated_identities (tenant_id, sub, provider_id);
