-- A cycle's calls, B2B and ERP apart: `api_calls` counted only B2B Edition's.
ALTER TABLE sync_runs RENAME COLUMN api_calls TO b2b_calls;
ALTER TABLE sync_runs ADD COLUMN erp_calls BIGINT NOT NULL DEFAULT 0;
