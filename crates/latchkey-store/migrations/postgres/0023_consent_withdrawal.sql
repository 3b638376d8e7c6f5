-- Withdrawing a consent refuses every access token its client got for the user until then:
-- a 'consent' revocation names "client_id sub" and holds the time tokens issued before it
-- (up to and including it) are refused.
ALTER TABLE revocations ADD COLUMN issued_before BIGINT;
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('jti', 'grant', 'session', 'api_key', 'consent'));
