-- A consent records the version of what the user was shown (a fingerprint of the consent
-- text and the scope and claim descriptions) and how it was given. Consents recorded
-- before have no version: the user is asked again once.
ALTER TABLE consents ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN how TEXT NOT NULL DEFAULT 'page' CHECK (how IN ('page', 'first_party'));

-- Every consent given, and when it was withdrawn: the history a person's export shows.
CREATE TABLE consent_history (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    sub          TEXT   NOT NULL,
    client_id    TEXT   NOT NULL,
    scopes       TEXT   NOT NULL,
    claims       TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    how          TEXT   NOT NULL,
    granted_at   BIGINT NOT NULL,
    withdrawn_at BIGINT
);
CREATE INDEX consent_history_by_user ON consent_history (tenant_id, sub, client_id);
