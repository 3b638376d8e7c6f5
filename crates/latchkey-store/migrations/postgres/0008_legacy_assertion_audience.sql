-- A client may be allowed, by name, to send private_key_jwt assertions whose audience is
-- the token endpoint URL rather than the issuer. The issuer is the only audience otherwise
-- (draft-ietf-oauth-rfc7523bis, after the 2025 audience-injection attacks,
-- CVE-2025-27370/27371); the relaxation is off for every existing and new client.
ALTER TABLE clients ADD COLUMN allow_legacy_assertion_audience BOOLEAN NOT NULL DEFAULT FALSE;
