-- A counter bumped by every write that changes what the dashboard shows (costs, anomalies,
-- recommendations, runs, the connection, the inventory), in the writing transaction. A server
-- may keep a computed dashboard for as long as the counter has not moved, on any replica.
ALTER TABLE tenants ADD COLUMN data_version BIGINT NOT NULL DEFAULT 0;
