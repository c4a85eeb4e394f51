-- A cycle can also stop early on shutdown ('stopped'): what it settled is committed, the rest is
-- read again next time.
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_outcome_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_outcome_check
    CHECK (outcome IN ('ok', 'partial', 'failed', 'skipped', 'stopped'));
