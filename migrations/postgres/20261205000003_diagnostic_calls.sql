-- Live AWS calls a tenant makes through the diagnostics (/test-ec2, /test-cpu, /test-cost):
-- they count in the tenant's AWS usage like a collection's requests, and the billed one
-- (/test-cost, $0.01 a Cost Explorer request) is limited per tenant and hour across replicas.
CREATE TABLE diagnostic_calls (
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    endpoint      TEXT NOT NULL CHECK (endpoint IN ('test-ec2', 'test-cpu', 'test-cost')),
    called_at     TIMESTAMPTZ NOT NULL,
    aws_requests  BIGINT NOT NULL DEFAULT 0,
    ce_requests   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX diagnostic_calls_recent ON diagnostic_calls (tenant_id, endpoint, called_at);
