-- Secondary indexes lead with their selective column, not with tenant_id.
--
-- A lookup by primary key (tenant_id, token_hash) could also be answered by any index that
-- starts with tenant_id, filtering the rest. On a table without statistics yet (a new
-- database, the first minute of load before autovacuum analyses it), PostgreSQL costs
-- both the same and its cached plan for a prepared statement may pick, say, the index on
-- (tenant_id, sub): every refresh then read the whole table (seen in the benchmark: 1,450
-- buffers per lookup at 15,000 rows). With the selective column first, such an index is
-- no candidate for a key lookup, and lookups by sub, sid, family, grant or email still
-- use it (equality on both columns).
DROP INDEX refresh_tokens_by_family;
DROP INDEX refresh_tokens_by_grant;
DROP INDEX refresh_tokens_by_sid;
DROP INDEX refresh_tokens_by_sub;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id, tenant_id);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id, tenant_id);
CREATE INDEX refresh_tokens_by_sid ON refresh_tokens (sid, tenant_id);
CREATE INDEX refresh_tokens_by_sub ON refresh_tokens (sub, tenant_id);

DROP INDEX browser_sessions_by_sub;
DROP INDEX browser_sessions_by_sid;
CREATE INDEX browser_sessions_by_sub ON browser_sessions (sub, tenant_id);
CREATE UNIQUE INDEX browser_sessions_by_sid ON browser_sessions (sid, tenant_id);

DROP INDEX passkeys_by_user;
CREATE INDEX passkeys_by_user ON passkeys (sub, tenant_id);

DROP INDEX users_by_email;
CREATE INDEX users_by_email ON users (email, tenant_id);
