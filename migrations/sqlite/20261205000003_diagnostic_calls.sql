-- Live AWS calls a tenant makes through the diagnostics (/test-ec2, /test-cpu, /test-cost):
-- they count in the tenant's AWS usage like a collection's requests, and the billed one
-- (/test-cost, $0.01 a Cost Explorer request) is limited per tenant and hour across replicas.
CREATE TABLE diagnostic_calls (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    endpoint      TEXT NOT NULL CHECK (endpoint IN ('test-ec2', 'test-cpu', 'test-cost')),
    called_at     TEXT NOT NULL,
    aws_requests  INTEGER NOT NULL DEFAULT 0,
    ce_requests   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX diagnostic_calls_recent ON diagnostic_calls (tenant_id, endpoint, called_at);
