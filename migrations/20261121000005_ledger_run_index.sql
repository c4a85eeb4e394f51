-- Every run ends by counting what it committed (`runs::committed_by_run`): without an index that
-- read the whole ledger once per cycle (found by `bench e2e` at 100k: a sequential scan of every
-- ledger row per cycle, even when nothing changed).
CREATE INDEX ledger_run_id ON ledger (run_id);
