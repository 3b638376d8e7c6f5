-- An ended browser session is revoked too: forward-auth cookies name their session, and
-- every node learns of the end through the revocation poll.
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check CHECK (kind IN ('jti', 'grant', 'session'));
