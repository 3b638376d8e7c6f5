-- A parked authorization request remembers the network it came from (an IPv4 address or
-- an IPv6 /64, as the server writes it), so that one network cannot park more than
-- `sessions.max_authorization_requests_per_ip` at once: unauthenticated requests must not
-- grow the database without bound. Requests parked before have none and count for nobody.
ALTER TABLE authorization_requests ADD COLUMN ip_key TEXT;
CREATE INDEX authorization_requests_by_ip ON authorization_requests (ip_key, tenant_id, expires_at);
