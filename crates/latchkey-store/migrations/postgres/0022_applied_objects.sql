-- `latchkey apply` (issue 19): the objects it created, so `--prune` removes only those and
-- never what an operator made by hand.
CREATE TABLE applied_objects (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, name)
);
