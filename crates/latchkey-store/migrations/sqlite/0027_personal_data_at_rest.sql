-- Personal data at rest: emails, names and profile claims of users, the address a
-- federated identity or a one-time token is about, parked authorization requests (with
-- their login_hint), sign-in ceremonies and stored admin API responses are sealed under a
-- data key derived from the master key. `sealed_gen` is the data-key generation a row is
-- sealed under; NULL marks a row written before this migration, still in clear until the
-- background job (or `latchkey keys rotate-data-key`) seals it, batch by batch.
ALTER TABLE users ADD COLUMN sealed_gen BIGINT;
-- A keyed HMAC of the normalised address (NFC, lowercase): searched by exact value and
-- unique among verified addresses, where the sealed address itself cannot be.
ALTER TABLE users ADD COLUMN email_index TEXT;
DROP INDEX users_verified_email;
DROP INDEX users_by_email;
CREATE UNIQUE INDEX users_verified_email ON users (tenant_id, email_index) WHERE email_index IS NOT NULL AND email_verified;
CREATE INDEX users_by_email_index ON users (email_index, tenant_id);
-- Rows not sealed yet are found, and kept unique, by the address in clear until they are.
CREATE UNIQUE INDEX users_verified_email_unsealed ON users (tenant_id, email) WHERE sealed_gen IS NULL AND email IS NOT NULL AND email_verified;
CREATE INDEX users_unsealed_by_email ON users (email, tenant_id) WHERE sealed_gen IS NULL;
ALTER TABLE federated_identities ADD COLUMN sealed_gen BIGINT;
-- What the sealing job reads, a batch at a time, without scanning or sorting: rows in
-- clear in their order, and, after a rotation, rows under an older generation. The
-- short-lived tables go without: their rows expire within hours.
CREATE INDEX users_by_sealed_gen ON users (sealed_gen, created_at, sub);
CREATE INDEX federated_identities_by_sealed_gen ON federated_identities (sealed_gen, tenant_id, provider_id, subject);
ALTER TABLE one_time_tokens ADD COLUMN sealed_gen BIGINT;
ALTER TABLE authorization_requests ADD COLUMN sealed_gen BIGINT;
ALTER TABLE auth_ceremonies ADD COLUMN sealed_gen BIGINT;
ALTER TABLE admin_idempotency ADD COLUMN sealed_gen BIGINT;
-- What a user granted a client, kept with its codes and refresh tokens: a `claims` request
-- can ask for a claim with a given value (an address, a number), and the grant keeps it.
ALTER TABLE authorization_codes ADD COLUMN sealed_gen BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN sealed_gen BIGINT;
CREATE INDEX refresh_tokens_by_sealed_gen ON refresh_tokens (sealed_gen);
INSERT INTO meta (name, value) VALUES ('data_key_generation', '1') ON CONFLICT (name) DO NOTHING;
