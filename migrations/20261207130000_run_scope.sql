-- What a run read: the source's whole change feed (`full`, the scheduled and triggered cycles) or
-- only invoices a webhook named, read by id (`invoices`). "Last success" (the staleness metrics
-- and alerts) counts full runs only: webhook runs that succeed must not hide a source whose
-- full read keeps failing.
ALTER TABLE sync_runs ADD COLUMN scope TEXT NOT NULL DEFAULT 'full'
    CHECK (scope IN ('full', 'invoices'));
