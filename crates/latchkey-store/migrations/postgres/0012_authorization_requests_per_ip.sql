-- A parked authorization request remembers the network it came from (an IPv4 address or
-- an IPv6 /64, as the server writes it), so that one network cannot park more than
-- `sessions.max_authorization_requests_per_ip` at once: unauthenticated requests must not
-- grow the database without bound. Requests parked before have none and count for nobody.
ALTER TABLE authorization_requests ADD COLUMN ip_key TEXT;
CREATE INDEX authorization_requests_by_ip ON authorization_requests (ip_key, tenant_id, expires_at);

-- Counts a network's live requests and parks one more if there is room, atomically across
-- nodes. The advisory lock (two-key form, a key space apart from the scheduled jobs'
-- one-key locks) makes parks from one network wait for each other until commit; each
-- statement of a VOLATILE PL/pgSQL function takes a fresh snapshot under READ COMMITTED, so
-- the count made after the lock sees every request parked before it. As one function
-- call it is one round trip, where BEGIN, lock, insert and COMMIT would be four.
CREATE FUNCTION park_authorization_request(
    p_tenant TEXT, p_id_hash TEXT, p_binding_hash TEXT, p_request TEXT, p_now BIGINT,
    p_expires_at BIGINT, p_ip_key TEXT, p_max_per_ip BIGINT
) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('authorization_requests_per_ip'), hashtext(p_tenant || ' ' || p_ip_key));
    IF (SELECT count(*) FROM (
            SELECT 1 FROM authorization_requests
            WHERE ip_key = p_ip_key AND tenant_id = p_tenant AND expires_at > p_now
            LIMIT p_max_per_ip
        ) AS live) >= p_max_per_ip THEN
        RETURN FALSE;
    END IF;
    INSERT INTO authorization_requests (tenant_id, id_hash, binding_hash, request, created_at, expires_at, ip_key)
    VALUES (p_tenant, p_id_hash, p_binding_hash, p_request, p_now, p_expires_at, p_ip_key);
    RETURN TRUE;
END
$$;
