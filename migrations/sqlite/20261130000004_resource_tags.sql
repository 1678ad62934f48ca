-- Tags per resource, from CUR / FOCUS exports (EC2 instance tags live on ec2_instances).
-- Cost rows carry the resource id; grouping costs by a tag joins through this table.
CREATE TABLE resource_tags (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource_id TEXT NOT NULL,
    tags        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, resource_id)
);
