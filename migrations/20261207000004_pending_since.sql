-- Since when a change of the ERP has been waiting to reach B2B (the first failure since the
-- invoice was last in step): the `b2bsync_oldest_unsynced_change_age_seconds` gauge.
ALTER TABLE invoice_state ADD COLUMN pending_since TIMESTAMPTZ NULL;
CREATE INDEX invoice_state_pending_since ON invoice_state (source, pending_since)
    WHERE status IN ('failed', 'dead', 'flagged');
