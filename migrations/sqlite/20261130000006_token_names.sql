-- API tokens a user creates by name for scripts and CI (login sessions have no name).
ALTER TABLE api_tokens ADD COLUMN name TEXT;
