-- The admin API (issue 19): admin clients, the admin scopes, the built-in admin roles and
-- the idempotency keys of creates.

-- Only a client registered as an admin client may be given admin scopes.
ALTER TABLE clients ADD COLUMN admin_client BOOLEAN NOT NULL DEFAULT FALSE;

-- The admin scopes are built in: listed with the others, never deleted or redefined. A
-- custom scope that took one of these names before becomes the built-in one.
INSERT INTO scopes (tenant_id, name, description, built_in, created_at)
SELECT t.id, s.name, s.description, TRUE, 0
FROM tenants t CROSS JOIN (
    SELECT 'admin:server:read' AS name, 'Admin API: read the server summary' AS description
    UNION ALL SELECT 'admin:users:read', 'Admin API: read users, their sessions, passkeys and linked accounts'
    UNION ALL SELECT 'admin:users:write', 'Admin API: create, change, lock and delete users; end their sessions'
    UNION ALL SELECT 'admin:clients:read', 'Admin API: read OAuth clients'
    UNION ALL SELECT 'admin:clients:write', 'Admin API: create, change and delete OAuth clients'
    UNION ALL SELECT 'admin:access:read', 'Admin API: read scopes, API resources, roles and groups'
    UNION ALL SELECT 'admin:access:write', 'Admin API: change scopes, API resources, roles, groups and memberships'
    UNION ALL SELECT 'admin:keys', 'Admin API: list, rotate and retire signing keys'
    UNION ALL SELECT 'admin:audit:read', 'Admin API: read the audit log'
) s WHERE TRUE
ON CONFLICT (tenant_id, name) DO UPDATE SET built_in = TRUE, description = excluded.description;

-- The built-in roles: `latchkey-admin` holds every admin scope, `latchkey-auditor` every
-- read-only one. A role that took one of these names before keeps its holders and gets
-- exactly these entitlements.
INSERT INTO roles (tenant_id, name, application, description, created_at)
SELECT t.id, r.name, NULL, r.description, 0
FROM tenants t CROSS JOIN (
    SELECT 'latchkey-admin' AS name, 'Administers Latchkey through the admin API' AS description
    UNION ALL SELECT 'latchkey-auditor', 'Reads everything through the admin API, changes nothing'
) r WHERE TRUE
ON CONFLICT (tenant_id, name) DO UPDATE SET application = NULL, description = excluded.description;
DELETE FROM role_entitlements WHERE role IN ('latchkey-admin', 'latchkey-auditor');
INSERT INTO role_entitlements (tenant_id, role, entitlement)
SELECT tenant_id, 'latchkey-admin', name FROM scopes WHERE name LIKE 'admin:%' AND built_in;
INSERT INTO role_entitlements (tenant_id, role, entitlement)
SELECT tenant_id, 'latchkey-auditor', name FROM scopes
WHERE name IN ('admin:server:read', 'admin:users:read', 'admin:clients:read', 'admin:access:read', 'admin:audit:read');

-- `Idempotency-Key` on the admin API's creates, per caller, kept 24 hours. A row without a
-- status is a create still running.
CREATE TABLE admin_idempotency (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    caller       TEXT   NOT NULL,
    idem_key     TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    status       BIGINT,
    location     TEXT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, caller, idem_key)
);
CREATE INDEX admin_idempotency_by_age ON admin_idempotency (created_at);

-- Audit queries by actor and by target, newest first.
CREATE INDEX audit_events_by_actor ON audit_events (tenant_id, actor, id);
CREATE INDEX audit_events_by_target ON audit_events (tenant_id, target, id);
