-- The audit log is paged newest first by (at, id) within a tenant: the position of a page's
-- last entry is where the next one starts, so entries recorded meanwhile shift nothing.
DROP INDEX IF EXISTS audit_log_by_tenant;
CREATE INDEX audit_log_by_tenant_page ON audit_log (tenant_id, at, id);

-- A claimed alert delivery belongs to the deliverer that claimed it (its claimer id): only
-- that one extends the claim while it sends, and only its outcome is recorded. NULL when
-- nobody holds it; while held, next_attempt_at is when the claim runs out.
ALTER TABLE alert_deliveries ADD COLUMN claimed_by TEXT;
