-- Indexes on the columns that end a row, so the cleanup job finds each batch of expired rows
-- by an index range scan (src/cleanup.rs). Without them each batch read the table from the
-- start: over a backlog of a million refresh tokens every batch scanned the rows that were
-- still live to find a thousand that were not.
CREATE INDEX authorization_requests_by_expiry ON authorization_requests (expires_at);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX login_failures_by_window ON login_failures (window_start);
CREATE INDEX assertion_jtis_by_expiry ON assertion_jtis (expires_at);
CREATE INDEX browser_sessions_by_last_use ON browser_sessions (last_active_at);
CREATE INDEX logout_deliveries_by_finish ON logout_deliveries (finished_at);

-- Sessions now leave with their lists of clients, in the same batch. Lists whose session
-- went before (the old cleanup removed them in a later statement) go once, here.
DELETE FROM session_clients WHERE NOT EXISTS (
    SELECT 1 FROM browser_sessions s WHERE s.tenant_id = session_clients.tenant_id AND s.sid = session_clients.sid);
