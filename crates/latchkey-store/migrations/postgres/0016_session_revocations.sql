-- An ended browser session and a revoked API key go into the revocation set too: every
-- node learns of them through the revocation poll, as of a revoked token (forward-auth
-- cookies name their session).
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check CHECK (kind IN ('jti', 'grant', 'session', 'api_key'));
