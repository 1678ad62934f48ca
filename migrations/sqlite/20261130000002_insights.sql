-- Insights: daily cost rollups (kept on write), recommendations, alert subscriptions and their
-- delivery log.

-- One row per tenant, day, dimension and key with the day's amount after source precedence
-- (CUR rows where the CUR covers the day, Cost Explorer otherwise). Rewritten for the affected
-- days in the same transaction as every write to daily_costs, so the dashboard never reads raw
-- rows and never disagrees with them.
CREATE TABLE cost_rollups (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day           TEXT NOT NULL,
    dimension     TEXT NOT NULL CHECK (dimension IN ('total', 'service', 'account', 'region')),
    key           TEXT NOT NULL,                  -- '' for the total
    amount_nanos  INTEGER NOT NULL,
    estimated     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dimension, day, key)
);

INSERT INTO cost_rollups (tenant_id, day, dimension, key, amount_nanos, estimated)
SELECT tenant_id, day, dim.dimension,
       CASE dim.dimension WHEN 'total' THEN '' WHEN 'service' THEN service
                          WHEN 'account' THEN account_id ELSE region END,
       SUM(unblended_nanos), MAX(CASE WHEN estimated THEN 1 ELSE 0 END) = 1
FROM daily_costs d
CROSS JOIN (SELECT 'total' AS dimension UNION ALL SELECT 'service' UNION ALL SELECT 'account'
            UNION ALL SELECT 'region') AS dim
WHERE d.source = CASE WHEN EXISTS (SELECT 1 FROM daily_costs c WHERE c.tenant_id = d.tenant_id
                                   AND c.day = d.day AND c.source = 'cur') THEN 'cur' ELSE 'ce' END
GROUP BY 1, 2, 3, 4;

-- Findings computed after each collection (idle / oversized instances ...), replaced per tenant.
CREATE TABLE recommendations (
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    savings_nanos INTEGER NOT NULL,
    detail       TEXT NOT NULL,
    computed_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, resource_id)
);

CREATE TABLE alert_subscriptions (
    tenant_id         BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                BLOB NOT NULL,
    name              TEXT NOT NULL,
    channel           TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    target            TEXT NOT NULL,
    threshold_kind    TEXT NOT NULL CHECK (threshold_kind IN ('absolute', 'percent')),
    threshold         TEXT NOT NULL,             -- decimal: money for absolute, percent for percent
    frequency         TEXT NOT NULL CHECK (frequency IN ('immediate', 'daily')),
    secret_ciphertext TEXT NOT NULL,             -- HMAC signing secret, sealed with the master key
    created_by        BLOB,
    created_at        TEXT NOT NULL,
    last_digest_at    TEXT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE alert_deliveries (
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              BLOB NOT NULL,
    subscription_id BLOB NOT NULL,
    kind            TEXT NOT NULL,              -- 'anomaly', 'digest', 'budget', ...
    subject_key     TEXT NOT NULL,              -- what the alert is about, for idempotence
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    response_code   INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, subscription_id, subject_key),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES alert_subscriptions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX anomalies_recent ON anomalies (tenant_id, first_day DESC);
