-- "Refresh now" pressed while the job is running: run it again as soon as this run ends,
-- instead of the request being lost when the run reschedules the job.
ALTER TABLE collection_jobs ADD COLUMN rerun_requested INTEGER NOT NULL DEFAULT 0;
