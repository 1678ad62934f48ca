-- CloudSpend schema, SQLite (the embedded first-run backend). Same tables and keys as the
-- PostgreSQL schema; types map as: UUID -> BLOB, TIMESTAMPTZ -> TEXT (RFC 3339 UTC), DATE -> TEXT
-- (YYYY-MM-DD), JSONB -> TEXT, DOUBLE PRECISION -> REAL. Money is INTEGER nano-units, as there.

CREATE TABLE users (
    id              BLOB PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,      -- stored lower-cased
    password_hash   TEXT NOT NULL,             -- argon2id PHC string
    is_global_owner INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    -- Issued by CloudSpend for the tenant's IAM role trust policy (sts:ExternalId).
    external_id TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE memberships (
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,               -- hex SHA-256 of the bearer token; the token itself is never stored
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The tenant chosen at login; X-Tenant-Id may pick another tenant the user belongs to.
    tenant_id  BLOB REFERENCES tenants (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE aws_connections (
    tenant_id              BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    display_name           TEXT NOT NULL,
    account_id             TEXT NOT NULL,
    account_type           TEXT NOT NULL CHECK (account_type IN ('organization', 'linked')),
    auth_method            TEXT NOT NULL CHECK (auth_method IN ('role', 'access_key')),
    role_arn               TEXT,
    access_key_id          TEXT,
    secret_key_ciphertext  TEXT,               -- AEAD ciphertext (base64); the clear secret is never stored
    regions                TEXT NOT NULL,
    cur_bucket             TEXT,
    cur_prefix             TEXT,
    athena_database        TEXT,
    athena_table           TEXT,
    athena_workgroup       TEXT,
    athena_results_bucket  TEXT,
    athena_results_prefix  TEXT,
    status                 TEXT NOT NULL,
    last_verified_at       TEXT,
    last_error             TEXT,
    warnings               TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);

CREATE TABLE ec2_instances (
    tenant_id         BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id        TEXT NOT NULL,
    region            TEXT NOT NULL,
    instance_id       TEXT NOT NULL,
    instance_type     TEXT NOT NULL,
    state             TEXT NOT NULL,
    launch_time       TEXT,
    availability_zone TEXT NOT NULL,
    platform          TEXT NOT NULL,
    tags              TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, account_id, region, instance_id)
);
CREATE INDEX ec2_instances_by_id ON ec2_instances (tenant_id, instance_id);

CREATE TABLE metric_points (
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    instance_id    TEXT NOT NULL,
    metric         TEXT NOT NULL,
    period_seconds INTEGER NOT NULL,
    ts             TEXT NOT NULL,
    average        REAL NOT NULL,
    maximum        REAL NOT NULL,
    unit           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, instance_id, metric, period_seconds, ts)
);

CREATE TABLE daily_costs (
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day              TEXT NOT NULL,
    source           TEXT NOT NULL CHECK (source IN ('ce', 'cur')),
    account_id       TEXT NOT NULL,
    service          TEXT NOT NULL,
    region           TEXT NOT NULL,
    usage_type       TEXT NOT NULL,
    resource_id      TEXT NOT NULL,
    line_item_type   TEXT NOT NULL,
    unblended_nanos  INTEGER NOT NULL,
    amortized_nanos  INTEGER NOT NULL,
    usage_amount     TEXT,
    currency         TEXT NOT NULL,
    estimated        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, source, account_id, service, region, usage_type, resource_id, line_item_type)
);

CREATE TABLE anomalies (
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              BLOB NOT NULL,
    series          TEXT NOT NULL,             -- "total", "service:AmazonEC2", "account:1234...", ...
    first_day       TEXT NOT NULL,
    last_day        TEXT NOT NULL,
    expected_nanos  INTEGER NOT NULL,
    lower_nanos     INTEGER NOT NULL,
    upper_nanos     INTEGER NOT NULL,
    actual_nanos    INTEGER NOT NULL,
    impact_nanos    INTEGER NOT NULL,
    impact_percent  REAL NOT NULL,
    score           REAL NOT NULL,
    severity        TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    root_causes     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved', 'planned')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, series, first_day)
);

CREATE TABLE collection_runs (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    collector     TEXT NOT NULL,
    window_start  TEXT NOT NULL,
    window_end    TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    rows_written  INTEGER NOT NULL DEFAULT 0,
    aws_requests  INTEGER NOT NULL DEFAULT 0,
    ce_requests   INTEGER NOT NULL DEFAULT 0,   -- Cost Explorer bills $0.01 per request
    retries       INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX collection_runs_recent ON collection_runs (tenant_id, started_at);

CREATE TABLE collection_jobs (
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    collector        TEXT NOT NULL,
    interval_seconds INTEGER NOT NULL,
    next_run_at      TEXT NOT NULL,
    -- A replica holds a job until leased_until; a crashed replica's lease simply runs out.
    leased_until     TEXT,
    lease_owner      TEXT,
    PRIMARY KEY (tenant_id, collector)
);
CREATE INDEX collection_jobs_due ON collection_jobs (next_run_at);

CREATE TABLE audit_log (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB REFERENCES tenants (id) ON DELETE CASCADE,  -- NULL for platform-wide actions
    user_id    BLOB,
    user_email TEXT,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, at);
