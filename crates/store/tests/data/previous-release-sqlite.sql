-- previous-release-postgres.sql's rows in SQLite's encoding, as the previous release's SQLite
-- backend wrote them: UUIDs as 16-byte BLOBs, timestamps as RFC 3339 text with +00:00 and 0, 3,
-- 6 or 9 fractional digits (what sqlx writes), dates as YYYY-MM-DD, booleans as 0/1, JSON as
-- text. The two files hold the same rows: change both.

INSERT INTO users (id, email, password_hash, is_global_owner, created_at) VALUES
  (X'11111111111141118111111111111111', 'ana@example.com',
   '$argon2id$v=19$m=19456,t=2,p=1$YW5hLXNhbHQ$YW5hLWhhc2gtb2YtaGVyLXBhc3N3b3Jk', 1, '2026-11-01T09:00:00+00:00'),
  (X'22222222222242228222222222222222', 'ben@example.com',
   '$argon2id$v=19$m=19456,t=2,p=1$YmVuLXNhbHQ$YmVuLWhhc2gtb2YtaGlzLXBhc3N3b3Jk', 0, '2026-11-02T10:30:00.123456+00:00');

INSERT INTO tenants (id, name, external_id, created_at, data_version) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'Acme', 'cs-acme0000000000000000000000000000acme000000000000000000000000001',
   '2026-11-01T09:00:00+00:00', 7),
  (X'BBBBBBBBBBBB4BBB8BBBBBBBBBBBBBBB', 'Globex', 'cs-globex00000000000000000000000000globex0000000000000000000000002',
   '2026-11-03T08:15:00+00:00', 0);

INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'11111111111141118111111111111111', 'owner', '2026-11-01T09:00:00+00:00'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'22222222222242228222222222222222', 'viewer', '2026-11-02T11:00:00+00:00'),
  (X'BBBBBBBBBBBB4BBB8BBBBBBBBBBBBBBB', X'22222222222242228222222222222222', 'owner', '2026-11-03T08:15:00+00:00');

-- A login session (no name: written before 20261130000006 or by a login), a named API token,
-- and a revoked one.
INSERT INTO api_tokens (token_hash, user_id, tenant_id, created_at, expires_at, revoked_at, name) VALUES
  ('aa00000000000000000000000000000000000000000000000000000000000001', X'11111111111141118111111111111111',
   X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-20T08:00:00+00:00', '2026-12-20T08:00:00+00:00', NULL, NULL),
  ('aa00000000000000000000000000000000000000000000000000000000000002', X'11111111111141118111111111111111',
   X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-21T08:00:00+00:00', '2027-11-21T08:00:00+00:00', NULL, 'ci'),
  ('bb00000000000000000000000000000000000000000000000000000000000003', X'22222222222242228222222222222222',
   X'BBBBBBBBBBBB4BBB8BBBBBBBBBBBBBBB', '2026-11-22T08:00:00+00:00', '2026-12-22T08:00:00+00:00', '2026-11-23T09:00:00+00:00', NULL);

INSERT INTO aws_connections (tenant_id, display_name, account_id, account_type, auth_method, role_arn, access_key_id,
    secret_key_ciphertext, regions, cur_bucket, cur_prefix, athena_database, athena_table, athena_workgroup,
    athena_results_bucket, athena_results_prefix, status, last_verified_at, last_error, warnings, created_at, updated_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'Acme payer', '123456789012', 'organization', 'access_key', NULL,
   'AKIAIOSFODNN7EXAMPLE',
   'v1:AAECAwQFBgcICQoLmyUF5dwdgkGJf3IcF6HtwrF5hNtc0WvM4aAdjd1Mk0QpiQgOWAGAJXnA0NFapn4E7cSRIWoeVVM=',
   '["us-east-1", "eu-west-1"]', 'acme-cur', 'cur/daily', 'cur_db', 'cur_table', 'primary', 'acme-athena', 'results/',
   'degraded', '2026-11-29T07:00:00.654321+00:00', NULL, '["Athena: the results bucket is not writable"]',
   '2026-11-05T12:00:00+00:00', '2026-11-29T07:00:00.654321+00:00'),
  (X'BBBBBBBBBBBB4BBB8BBBBBBBBBBBBBBB', 'Globex', '210987654321', 'linked', 'role',
   'arn:aws:iam::210987654321:role/CloudSpendReadOnly', NULL, NULL, '["us-west-2"]', NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, 'connected', '2026-11-06T10:00:00+00:00', NULL, '[]', '2026-11-06T10:00:00+00:00', '2026-11-06T10:00:00+00:00');

-- i-0aaa was written before 20261130000008 (its volumes and state_since are the defaults).
INSERT INTO ec2_instances (tenant_id, account_id, region, instance_id, instance_type, state, launch_time,
    availability_zone, platform, tags, last_seen_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '123456789012', 'us-east-1', 'i-0aaa', 't3.micro', 'running',
   '2026-10-01T00:00:00+00:00', 'us-east-1a', 'Linux/UNIX', '{"Name": "web", "team": "web"}', '2026-11-30T06:00:00.123456+00:00');
INSERT INTO ec2_instances (tenant_id, account_id, region, instance_id, instance_type, state, launch_time,
    availability_zone, platform, tags, last_seen_at, volume_ids, state_since) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '123456789012', 'eu-west-1', 'i-0bbb', 'm5.large', 'stopped', NULL,
   'eu-west-1b', 'Windows', '{}', '2026-11-30T06:00:00.123456+00:00', '["vol-0bbb-root", "vol-0bbb-data"]',
   '2026-11-15T16:45:00+00:00');

INSERT INTO metric_points (tenant_id, instance_id, metric, period_seconds, ts, average, maximum, unit) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'i-0aaa', 'CPUUtilization', 3600, '2026-11-29T00:00:00+00:00', 1.25, 3.5, 'Percent'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'i-0aaa', 'CPUUtilization', 3600, '2026-11-29T01:00:00+00:00', 0.0625, 0.125, 'Percent'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'i-0aaa', 'CPUUtilization', 3600, '2026-11-29T02:00:00+00:00', 97.75, 100, 'Percent');

-- 27th: Cost Explorer only. 28th: the CUR covers it (its rows count, not Cost Explorer's). 29th:
-- an estimate and a credit.
INSERT INTO daily_costs (tenant_id, day, source, account_id, service, region, usage_type, resource_id, line_item_type,
    unblended_nanos, amortized_nanos, usage_amount, currency, estimated) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '', '',
   12345678901, 12000000000, NULL, 'USD', 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'ce', '123456789012', 'AmazonS3', 'us-west-2', '', '', '',
   1, 1, NULL, 'USD', 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '', '',
   5000000000, 5000000000, NULL, 'USD', 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'cur', '123456789012', 'AmazonEC2', 'us-east-1',
   'BoxUsage:t3.micro', 'i-0aaa', 'Usage', 4999999999, 4999999999, '24', 'USD', 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'cur', '123456789012', 'AmazonEC2', 'us-east-1',
   'EBS:VolumeUsage.gp3', 'vol-0aaa', 'Usage', 333333333, 333333333, '0.2666666667', 'USD', 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-29', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '', '',
   9876543210, 9876543210, NULL, 'USD', 1),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-29', 'ce', '123456789012', 'AmazonEC2', 'us-east-1', '', '',
   'Credit', -1000000000, -1000000000, NULL, 'USD', 0);

-- The rollups the previous release kept on write for those rows.
INSERT INTO cost_rollups (tenant_id, day, dimension, key, amount_nanos, estimated) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'total', '', 12345678902, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'service', 'AmazonEC2', 12345678901, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'service', 'AmazonS3', 1, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'account', '123456789012', 12345678902, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'region', 'us-east-1', 12345678901, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-27', 'region', 'us-west-2', 1, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'total', '', 5333333332, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'service', 'AmazonEC2', 5333333332, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'account', '123456789012', 5333333332, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-28', 'region', 'us-east-1', 5333333332, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-29', 'total', '', 8876543210, 1),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-29', 'service', 'AmazonEC2', 8876543210, 1),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-29', 'account', '123456789012', 8876543210, 1),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', '2026-11-29', 'region', 'us-east-1', 8876543210, 1);

INSERT INTO resource_tags (tenant_id, resource_id, tags, updated_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'i-0aaa', '{"env": "prod", "team": "web"}', '2026-11-29T03:00:00+00:00');

INSERT INTO anomalies (tenant_id, id, series, first_day, last_day, expected_nanos, lower_nanos, upper_nanos,
    actual_nanos, impact_nanos, impact_percent, score, severity, root_causes, status, created_at, updated_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'A000000000004000800000000000000A', 'service:AmazonEC2', '2026-11-27',
   '2026-11-27', 5000000000, 4000000000, 6000000000, 12345678901, 7345678901, 146.91357802, 8.5, 'high',
   '[{"dimension": "usage_type", "key": "BoxUsage:t3.micro", "share": 1.0}]', 'acknowledged',
   '2026-11-28T06:00:00+00:00', '2026-11-28T09:30:00.250+00:00'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'A000000000004000800000000000000B', 'total', '2026-11-29',
   '2026-11-29', 6000000000, 5000000000, 7000000000, 8876543210, 2876543210, 47.94238683, 3.25, 'medium',
   '[]', 'open', '2026-11-30T06:00:00+00:00', '2026-11-30T06:00:00+00:00');

INSERT INTO recommendations (tenant_id, kind, resource_id, savings_nanos, detail, computed_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'idle', 'i-0aaa', 7592000000,
   '{"instance_type": "t3.micro", "cpu_p95": 3.5, "cost_basis": "cur"}', '2026-11-30T06:00:00+00:00');

-- One finished run of each outcome, and a CloudWatch run still "running": its replica died
-- during the upgrade.
INSERT INTO collection_runs (tenant_id, id, collector, window_start, window_end, started_at, finished_at, status,
    rows_written, aws_requests, ce_requests, retries, error) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'C0000000000040008000000000000001', 'ec2', '2026-11-30T10:00:00+00:00',
   '2026-11-30T11:00:00+00:00', '2026-11-30T11:00:00+00:00', '2026-11-30T11:00:02.500+00:00', 'succeeded', 2, 3, 0, 1, NULL),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'C0000000000040008000000000000002', 'costexplorer', '2026-11-23T00:00:00+00:00',
   '2026-11-30T00:00:00+00:00', '2026-11-30T11:00:01+00:00', '2026-11-30T11:00:04+00:00', 'failed', 0, 4, 4, 2,
   'ce:GetCostAndUsage failed: LimitExceededException: Rate exceeded'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'C0000000000040008000000000000003', 'cloudwatch', '2026-11-30T10:00:00+00:00',
   '2026-11-30T11:00:00+00:00', '2026-11-30T11:00:03+00:00', NULL, 'running', 0, 0, 0, 0, NULL);

-- EC2 not due until 13:00; Cost Explorer due with a refresh requested; CloudWatch leased by
-- the dead replica until 11:10.
INSERT INTO collection_jobs (tenant_id, collector, interval_seconds, next_run_at, leased_until, lease_owner,
    rerun_requested) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'ec2', 3600, '2026-11-30T13:00:00+00:00', NULL, NULL, 0),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'costexplorer', 21600, '2026-11-30T11:00:00+00:00', NULL, NULL, 1),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'cloudwatch', 3600, '2026-11-30T11:00:00+00:00', '2026-11-30T11:10:00+00:00',
   'old-host:4242:deadbeef', 0);

-- An entry from before outcomes were recorded (its status is the column's default), two with
-- the same instant (paged by id), and a platform-wide one.
INSERT INTO audit_log (id, tenant_id, user_id, user_email, action, detail, at) VALUES
  (X'D0000000000040008000000000000001', X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA',
   X'11111111111141118111111111111111', 'ana@example.com', 'member.add',
   '{"email": "ben@example.com", "role": "viewer"}', '2026-11-02T11:00:00+00:00');
INSERT INTO audit_log (id, tenant_id, user_id, user_email, action, detail, at, status) VALUES
  (X'D0000000000040008000000000000002', X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA',
   X'11111111111141118111111111111111', 'ana@example.com', 'action.confirm',
   '{"instance_id": "i-0bbb", "action": "stop", "aws_request_id": "req-1"}', '2026-11-15T16:44:59.123456+00:00', 'succeeded'),
  (X'D0000000000040008000000000000003', X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA',
   X'22222222222242228222222222222222', 'ben@example.com', 'action.request',
   '{"instance_id": "i-0aaa", "reason": "viewer"}', '2026-11-15T16:44:59.123456+00:00', 'refused'),
  (X'D0000000000040008000000000000004', NULL, NULL, NULL, 'user.create',
   '{"email": "ana@example.com", "global_owner": true}', '2026-11-01T09:00:00+00:00', 'ok');

INSERT INTO action_tokens (tenant_id, token_hash, user_id, instance_id, region, action, created_at, expires_at,
    used_at, detail) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'ac00000000000000000000000000000000000000000000000000000000000001',
   X'11111111111141118111111111111111', 'i-0bbb', 'eu-west-1', 'stop', '2026-11-15T16:40:00+00:00',
   '2026-11-15T16:45:00+00:00', '2026-11-15T16:44:59.123456+00:00', '{"monthly_cost": "70.08"}'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 'ac00000000000000000000000000000000000000000000000000000000000002',
   X'11111111111141118111111111111111', 'i-0aaa', 'us-east-1', 'stop', '2026-11-30T12:00:00+00:00',
   '2026-11-30T12:05:00+00:00', NULL, '{"monthly_cost": "7.59", "finding": "idle"}');

INSERT INTO budgets (tenant_id, amount_nanos, currency, actual_thresholds, forecast_thresholds, alerted, updated_by,
    updated_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', 1000000000000, 'USD', '[50, 80, 100]', '[100]',
   '{"month": "2026-11", "actual": [50], "forecast": []}', X'11111111111141118111111111111111',
   '2026-11-10T10:00:00+00:00');

INSERT INTO alert_subscriptions (tenant_id, id, name, channel, target, threshold_kind, threshold, frequency,
    secret_ciphertext, created_by, created_at, last_digest_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'E0000000000040008000000000000001', 'Ops hook', 'webhook',
   'https://hooks.example.com/cloudspend', 'absolute', '100.00', 'immediate',
   'v1:DA0ODxAREhMUFRYXzhS/P7ZsmBGuPsAyedpuls9BDX9qQS5b2z6mXIAusoDW7d7EWTUgrzcBbuzbOsgMsqknH9c=',
   X'11111111111141118111111111111111', '2026-11-10T10:05:00+00:00', NULL);

-- Delivered; claimed by a deliverer of the previous release until 12:01 (claims had no owner
-- then: the claim is the moved next attempt and the counted attempt); waiting to be retried.
INSERT INTO alert_deliveries (tenant_id, id, subscription_id, kind, subject_key, payload, status, attempts,
    next_attempt_at, response_code, last_error, created_at, updated_at) VALUES
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'F0000000000040008000000000000001', X'E0000000000040008000000000000001',
   'anomaly', 'anomaly:a0000000-0000-4000-8000-00000000000a', '{"series": "service:AmazonEC2"}', 'delivered', 1,
   '2026-11-28T06:00:00+00:00', 200, NULL, '2026-11-28T06:00:00+00:00', '2026-11-28T06:00:01+00:00'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'F0000000000040008000000000000002', X'E0000000000040008000000000000001',
   'anomaly', 'anomaly:a0000000-0000-4000-8000-00000000000b', '{"series": "total"}', 'pending', 1,
   '2026-11-30T12:01:00+00:00', NULL, NULL, '2026-11-30T12:00:00+00:00', '2026-11-30T12:00:00+00:00'),
  (X'AAAAAAAAAAAA4AAA8AAAAAAAAAAAAAAA', X'F0000000000040008000000000000003', X'E0000000000040008000000000000001',
   'budget', 'budget:2026-11:actual:50', '{"threshold": 50}', 'pending', 2,
   '2026-11-30T12:30:00+00:00', 502, 'HTTP 502 from the endpoint', '2026-11-30T11:00:00+00:00', '2026-11-30T11:30:00+00:00');
