-- Roles, groups and who holds them (RFC 9068 §2.2.3.1). A role may belong to one client
-- (an application role): it goes with the client. Every link goes with either end.
CREATE TABLE roles (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id),
    name        TEXT   NOT NULL,
    application TEXT,
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, application) REFERENCES clients (tenant_id, client_id) ON DELETE CASCADE
);

CREATE TABLE role_entitlements (
    tenant_id   TEXT NOT NULL,
    role        TEXT NOT NULL,
    entitlement TEXT NOT NULL,
    PRIMARY KEY (tenant_id, role, entitlement),
    FOREIGN KEY (tenant_id, role) REFERENCES roles (tenant_id, name) ON DELETE CASCADE
);

CREATE TABLE user_groups (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id),
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE group_members (
    tenant_id  TEXT NOT NULL,
    group_name TEXT NOT NULL,
    sub        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_name, sub),
    FOREIGN KEY (tenant_id, group_name) REFERENCES user_groups (tenant_id, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, sub) REFERENCES users (tenant_id, sub) ON DELETE CASCADE
);
CREATE INDEX group_members_by_user ON group_members (tenant_id, sub);

CREATE TABLE group_roles (
    tenant_id  TEXT NOT NULL,
    group_name TEXT NOT NULL,
    role       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_name, role),
    FOREIGN KEY (tenant_id, group_name) REFERENCES user_groups (tenant_id, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role) REFERENCES roles (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX group_roles_by_role ON group_roles (tenant_id, role);

CREATE TABLE user_roles (
    tenant_id TEXT NOT NULL,
    sub       TEXT NOT NULL,
    role      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, sub, role),
    FOREIGN KEY (tenant_id, sub) REFERENCES users (tenant_id, sub) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role) REFERENCES roles (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX user_roles_by_role ON user_roles (tenant_id, role);

-- What a client releases of these and which roles it requires (JSON, like session_policy).
ALTER TABLE clients ADD COLUMN access_policy TEXT NOT NULL DEFAULT '{}';
