-- What the previous release (migrations up to 20261130000008) keeps, written as it wrote it:
-- every table of that schema holds rows here. crates/store/tests/upgrade.rs loads this after
-- the previous release's migrations, applies all of today's, and reads it back through the
-- Store. previous-release-sqlite.sql holds the same rows in SQLite's encoding (UUIDs as
-- 16-byte BLOBs, timestamps as RFC 3339 text with +00:00, booleans as 0/1): change both.
--
-- Acme (aaaaaaaa-...) is connected with access keys, sealed under the test's FIXTURE_MASTER_KEY;
-- Globex (bbbbbbbb-...) with a role. Ana owns Acme and is the global owner; Ben views Acme and
-- owns Globex.

INSERT INTO users (id, email, password_hash, is_global_owner, created_at) VALUES
  ('11111111-1111-4111-8111-111111111111', 'ana@example.com',
   '$argon2id$v=19$m=19456,t=2,p=1$YW5hLXNhbHQ$YW5hLWhhc2gtb2YtaGVyLXBhc3N3b3Jk', TRUE, '2026-11-01T09:00:00Z'),
  ('22222222-2222-4222-8222-222222222222', 'ben@example.com',
   '$argon2id$v=19$m=19456,t=2,p=1$YmVuLXNhbHQ$YmVuLWhhc2gtb2YtaGlzLXBhc3N3b3Jk', FALSE, '2026-11-02T10:30:00.123456Z');

INSERT INTO tenants (id, name, external_id, created_at, data_version) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'Acme', 'cs-acme0000000000000000000000000000acme000000000000000000000000001',
   '2026-11-01T09:00:00Z', 7),
  ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'Globex', 'cs-globex00000000000000000000000000globex0000000000000000000000002',
   '2026-11-03T08:15:00Z', 0);

INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '11111111-1111-4111-8111-111111111111', 'owner', '2026-11-01T09:00:00Z'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '22222222-2222-4222-8222-222222222222', 'viewer', '2026-11-02T11:00:00Z'),
  ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', '22222222-2222-4222-8222-222222222222', 'owner', '2026-11-03T08:15:00Z');

-- A login session (no name: written before 20261130000006 or by a login), a named API token,
-- and a revoked one.
INSERT INTO api_tokens (token_hash, user_id, tenant_id, created_at, expires_at, revoked_at, name) VALUES
  ('aa00000000000000000000000000000000000000000000000000000000000001', '11111111-1111-4111-8111-111111111111',
   'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-20T08:00:00Z', '2026-12-20T08:00:00Z', NULL, NULL),
  ('aa00000000000000000000000000000000000000000000000000000000000002', '11111111-1111-4111-8111-111111111111',
   'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-21T08:00:00Z', '2027-11-21T08:00:00Z', NULL, 'ci'),
  ('bb00000000000000000000000000000000000000000000000000000000000003', '22222222-2222-4222-8222-222222222222',
   'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', '2026-11-22T08:00:00Z', '2026-12-22T08:00:00Z', '2026-11-23T09:00:00Z', NULL);

INSERT INTO aws_connections (tenant_id, display_name, account_id, account_type, auth_method, role_arn, access_key_id,
    secret_key_ciphertext, regions, cur_bucket, cur_prefix, athena_database, athena_table, athena_workgroup,
    athena_results_bucket, athena_results_prefix, status, last_verified_at, last_error, warnings, created_at, updated_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'Acme payer', '123456789012', 'organization', 'access_key', NULL,
   'AKIAIOSFODNN7EXAMPLE',
   'v1:AAECAwQFBgcICQoLmyUF5dwdgkGJf3IcF6HtwrF5hNtc0WvM4aAdjd1Mk0QpiQgOWAGAJXnA0NFapn4E7cSRIWoeVVM=',
   '["us-east-1", "eu-west-1"]', 'acme-cur', 'cur/daily', 'cur_db', 'cur_table', 'primary', 'acme-athena', 'results/',
   'degraded', '2026-11-29T07:00:00.654321Z', NULL, '["Athena: the results bucket is not writable"]',
   '2026-11-05T12:00:00Z', '2026-11-29T07:00:00.654321Z'),
  ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'Globex', '210987654321', 'linked', 'role',
   'arn:aws:iam::210987654321:role/CloudSpendReadOnly', NULL, NULL, '["us-west-2"]', NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, 'connected', '2026-11-06T10:00:00Z', NULL, '[]', '2026-11-06T10:00:00Z', '2026-11-06T10:00:00Z');

-- i-0aaa was written before 20261130000008 (its volumes and state_since are the defaults).
INSERT INTO ec2_instances (tenant_id, account_id, region, instance_id, instance_type, state, launch_time,
    availability_zone, platform, tags, last_seen_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '123456789012', 'us-east-1', 'i-0aaa', 't3.micro', 'running',
   '2026-10-01T00:00:00Z', 'us-east-1a', 'Linux/UNIX', '{"Name": "web", "team": "web"}', '2026-11-30T06:00:00.123456Z');
INSERT INTO ec2_instances (tenant_id, account_id, region, instance_id, instance_type, state, launch_time,
    availability_zone, platform, tags, last_seen_at, volume_ids, state_since) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '123456789012', 'eu-west-1', 'i-0bbb', 'm5.large', 'stopped', NULL,
   'eu-west-1b', 'Windows', '{}', '2026-11-30T06:00:00.123456Z', '["vol-0bbb-root", "vol-0bbb-data"]',
   '2026-11-15T16:45:00Z');

INSERT INTO metric_points (tenant_id, instance_id, metric, period_seconds, ts, average, maximum, unit) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'i-0aaa', 'CPUUtilization', 3600, '2026-11-29T00:00:00Z', 1.25, 3.5, 'Percent'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'i-0aaa', 'CPUUtilization', 3600, '2026-11-29T01:00:00Z', 0.0625, 0.125, 'Percent'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'i-0aaa', 'CPUUtilization', 3600, '2026-11-29T02:00:00Z', 97.75, 100, 'Percent');

-- 27th: Cost Explorer only. 28th: the CUR covers it (its rows count, not Cost Explorer's). 29th:
-- an estimate and a credit.
INSERT INTO daily_costs (tenant_id, day, source, account_id, service, region, usage_type, resource_id, line_item_type,
    unblended_nanos, amortized_nanos, usage_amount, currency, estimated) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '', '',
   12345678901, 12000000000, NULL, 'USD', FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'ce', '123456789012', 'AmazonS3', 'us-west-2', '', '', '',
   1, 1, NULL, 'USD', FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '', '',
   5000000000, 5000000000, NULL, 'USD', FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'cur', '123456789012', 'AmazonEC2', 'us-east-1',
   'BoxUsage:t3.micro', 'i-0aaa', 'Usage', 4999999999, 4999999999, '24', 'USD', FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'cur', '123456789012', 'AmazonEC2', 'us-east-1',
   'EBS:VolumeUsage.gp3', 'vol-0aaa', 'Usage', 333333333, 333333333, '0.2666666667', 'USD', FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-29', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '', '',
   9876543210, 9876543210, NULL, 'USD', TRUE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-29', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '',
   'Credit', -1000000000, -1000000000, NULL, 'USD', FALSE);

-- The rollups the previous release kept on write for those rows.
INSERT INTO cost_rollups (tenant_id, day, dimension, key, amount_nanos, estimated) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'total', '', 12345678902, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'service', 'AmazonEC2', 12345678901, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'service', 'AmazonS3', 1, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'account', '123456789012', 12345678902, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'region', 'us-east-1', 12345678901, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-27', 'region', 'us-west-2', 1, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'total', '', 5333333332, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'service', 'AmazonEC2', 5333333332, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'account', '123456789012', 5333333332, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-28', 'region', 'us-east-1', 5333333332, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-29', 'total', '', 8876543210, TRUE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-29', 'service', 'AmazonEC2', 8876543210, TRUE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-29', 'account', '123456789012', 8876543210, TRUE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', '2026-11-29', 'region', 'us-east-1', 8876543210, TRUE);

INSERT INTO resource_tags (tenant_id, resource_id, tags, updated_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'i-0aaa', '{"env": "prod", "team": "web"}', '2026-11-29T03:00:00Z');

INSERT INTO anomalies (tenant_id, id, series, first_day, last_day, expected_nanos, lower_nanos, upper_nanos,
    actual_nanos, impact_nanos, impact_percent, score, severity, root_causes, status, created_at, updated_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'a0000000-0000-4000-8000-00000000000a', 'service:AmazonEC2', '2026-11-27',
   '2026-11-27', 5000000000, 4000000000, 6000000000, 12345678901, 7345678901, 146.91357802, 8.5, 'high',
   '[{"dimension": "usage_type", "key": "BoxUsage:t3.micro", "share": 1.0}]', 'acknowledged',
   '2026-11-28T06:00:00Z', '2026-11-28T09:30:00.250Z'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'a0000000-0000-4000-8000-00000000000b', 'total', '2026-11-29',
   '2026-11-29', 6000000000, 5000000000, 7000000000, 8876543210, 2876543210, 47.94238683, 3.25, 'medium',
   '[]', 'open', '2026-11-30T06:00:00Z', '2026-11-30T06:00:00Z');

INSERT INTO recommendations (tenant_id, kind, resource_id, savings_nanos, detail, computed_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'idle', 'i-0aaa', 7592000000,
   '{"instance_type": "t3.micro", "cpu_p95": 3.5, "cost_basis": "cur"}', '2026-11-30T06:00:00Z');

-- One finished run of each outcome, and a CloudWatch run still "running": its replica died
-- during the upgrade.
INSERT INTO collection_runs (tenant_id, id, collector, window_start, window_end, started_at, finished_at, status,
    rows_written, aws_requests, ce_requests, retries, error) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'c0000000-0000-4000-8000-000000000001', 'ec2', '2026-11-30T10:00:00Z',
   '2026-11-30T11:00:00Z', '2026-11-30T11:00:00Z', '2026-11-30T11:00:02.500Z', 'succeeded', 2, 3, 0, 1, NULL),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'c0000000-0000-4000-8000-000000000002', 'costexplorer', '2026-11-23T00:00:00Z',
   '2026-11-30T00:00:00Z', '2026-11-30T11:00:01Z', '2026-11-30T11:00:04Z', 'failed', 0, 4, 4, 2,
   'ce:GetCostAndUsage failed: LimitExceededException: Rate exceeded'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'c0000000-0000-4000-8000-000000000003', 'cloudwatch', '2026-11-30T10:00:00Z',
   '2026-11-30T11:00:00Z', '2026-11-30T11:00:03Z', NULL, 'running', 0, 0, 0, 0, NULL);

-- EC2 not due until 13:00; Cost Explorer due with a refresh requested; CloudWatch leased by
-- the dead replica until 11:10.
INSERT INTO collection_jobs (tenant_id, collector, interval_seconds, next_run_at, leased_until, lease_owner,
    rerun_requested) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ec2', 3600, '2026-11-30T13:00:00Z', NULL, NULL, FALSE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'costexplorer', 21600, '2026-11-30T11:00:00Z', NULL, NULL, TRUE),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'cloudwatch', 3600, '2026-11-30T11:00:00Z', '2026-11-30T11:10:00Z',
   'old-host:4242:deadbeef', FALSE);

-- An entry from before outcomes were recorded (its status is the column's default), two with
-- the same instant (paged by id), and a platform-wide one.
INSERT INTO audit_log (id, tenant_id, user_id, user_email, action, detail, at) VALUES
  ('d0000000-0000-4000-8000-000000000001', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
   '11111111-1111-4111-8111-111111111111', 'ana@example.com', 'member.add',
   '{"email": "ben@example.com", "role": "viewer"}', '2026-11-02T11:00:00Z');
INSERT INTO audit_log (id, tenant_id, user_id, user_email, action, detail, at, status) VALUES
  ('d0000000-0000-4000-8000-000000000002', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
   '11111111-1111-4111-8111-111111111111', 'ana@example.com', 'action.confirm',
   '{"instance_id": "i-0bbb", "action": "stop", "aws_request_id": "req-1"}', '2026-11-15T16:44:59.123456Z', 'succeeded'),
  ('d0000000-0000-4000-8000-000000000003', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
   '22222222-2222-4222-8222-222222222222', 'ben@example.com', 'action.request',
   '{"instance_id": "i-0aaa", "reason": "viewer"}', '2026-11-15T16:44:59.123456Z', 'refused'),
  ('d0000000-0000-4000-8000-000000000004', NULL, NULL, NULL, 'user.create',
   '{"email": "ana@example.com", "global_owner": true}', '2026-11-01T09:00:00Z', 'ok');

INSERT INTO action_tokens (tenant_id, token_hash, user_id, instance_id, region, action, created_at, expires_at,
    used_at, detail) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ac00000000000000000000000000000000000000000000000000000000000001',
   '11111111-1111-4111-8111-111111111111', 'i-0bbb', 'eu-west-1', 'stop', '2026-11-15T16:40:00Z',
   '2026-11-15T16:45:00Z', '2026-11-15T16:44:59.123456Z', '{"monthly_cost": "70.08"}'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'ac00000000000000000000000000000000000000000000000000000000000002',
   '11111111-1111-4111-8111-111111111111', 'i-0aaa', 'us-east-1', 'stop', '2026-11-30T12:00:00Z',
   '2026-11-30T12:05:00Z', NULL, '{"monthly_cost": "7.59", "finding": "idle"}');

INSERT INTO budgets (tenant_id, amount_nanos, currency, actual_thresholds, forecast_thresholds, alerted, updated_by,
    updated_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 1000000000000, 'USD', '[50, 80, 100]', '[100]',
   '{"month": "2026-11", "actual": [50], "forecast": []}', '11111111-1111-4111-8111-111111111111',
   '2026-11-10T10:00:00Z');

INSERT INTO alert_subscriptions (tenant_id, id, name, channel, target, threshold_kind, threshold, frequency,
    secret_ciphertext, created_by, created_at, last_digest_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'e0000000-0000-4000-8000-000000000001', 'Ops hook', 'webhook',
   'https://hooks.example.com/cloudspend', 'absolute', '100.00', 'immediate',
   'v1:DA0ODxAREhMUFRYXzhS/P7ZsmBGuPsAyedpuls9BDX9qQS5b2z6mXIAusoDW7d7EWTUgrzcBbuzbOsgMsqknH9c=',
   '11111111-1111-4111-8111-111111111111', '2026-11-10T10:05:00Z', NULL);

-- Delivered; claimed by a deliverer of the previous release until 12:01 (claims had no owner
-- then: the claim is the moved next attempt and the counted attempt); waiting to be retried.
INSERT INTO alert_deliveries (tenant_id, id, subscription_id, kind, subject_key, payload, status, attempts,
    next_attempt_at, response_code, last_error, created_at, updated_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'f0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001',
   'anomaly', 'anomaly:a0000000-0000-4000-8000-00000000000a', '{"series": "service:AmazonEC2"}', 'delivered', 1,
   '2026-11-28T06:00:00Z', 200, NULL, '2026-11-28T06:00:00Z', '2026-11-28T06:00:01Z'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'f0000000-0000-4000-8000-000000000002', 'e0000000-0000-4000-8000-000000000001',
   'anomaly', 'anomaly:a0000000-0000-4000-8000-00000000000b', '{"series": "total"}', 'pending', 1,
   '2026-11-30T12:01:00Z', NULL, NULL, '2026-11-30T12:00:00Z', '2026-11-30T12:00:00Z'),
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'f0000000-0000-4000-8000-000000000003', 'e0000000-0000-4000-8000-000000000001',
   'budget', 'budget:2026-11:actual:50', '{"threshold": 50}', 'pending', 2,
   '2026-11-30T12:30:00Z', 502, 'HTTP 502 from the endpoint', '2026-11-30T11:00:00Z', '2026-11-30T11:30:00Z');
