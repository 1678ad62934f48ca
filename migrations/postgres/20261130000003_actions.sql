-- Acting on findings (issue 9): one-time confirmation tokens for EC2 stop/start, the tenant's
-- monthly budget, and an outcome on every audit entry.

-- A confirmation token: only its SHA-256 is kept. Bound to the tenant, the user who asked, the
-- instance and the action; used at most once (used_at is set by one conditional UPDATE, so two
-- concurrent confirmations cannot both win) and only before expires_at.
CREATE TABLE action_tokens (
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL,
    user_id      UUID NOT NULL,
    instance_id  TEXT NOT NULL,
    region       TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('stop', 'start')),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    detail       JSONB NOT NULL,           -- what the requester was shown (cost, finding)
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE UNIQUE INDEX action_tokens_by_hash ON action_tokens (token_hash);
CREATE INDEX action_tokens_expiry ON action_tokens (expires_at);

-- One monthly budget per tenant. Thresholds are whole percents of the amount, for the
-- month-to-date spend (actual) and the month-end forecast; `alerted` remembers which were
-- crossed in which month ({"month": "2026-11", "actual": [50, 80], "forecast": [100]}).
CREATE TABLE budgets (
    tenant_id           UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    amount_nanos        BIGINT NOT NULL CHECK (amount_nanos > 0),
    currency            TEXT NOT NULL,
    actual_thresholds   JSONB NOT NULL,
    forecast_thresholds JSONB NOT NULL,
    alerted             JSONB NOT NULL,
    updated_by          UUID,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- The outcome of an audited request (succeeded | refused | failed); 'ok' for entries written
-- before outcomes were recorded and for plain changes.
ALTER TABLE audit_log ADD COLUMN status TEXT NOT NULL DEFAULT 'ok';
-- Retention purges by age across tenants.
CREATE INDEX audit_log_by_at ON audit_log (at);
