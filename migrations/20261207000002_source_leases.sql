-- Fencing for the one-runner-per-source lock (docs/ARCHITECTURE.md, "One runner per source").
-- Taking a source's advisory lock bumps its token; every ledger intent checks, in its own
-- transaction, that the token is still the one this process took and that the session holding
-- the advisory lock is still alive. A process whose lock was lost (connection killed, failover)
-- stops before its next change, whether or not another process took the source meanwhile.
CREATE TABLE source_leases (
    source      TEXT        PRIMARY KEY,
    token       BIGINT      NOT NULL,
    holder_pid  INTEGER     NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The process a run belongs to (its connections' application_name, `b2b-invoice-sync/<uuid>`):
-- recovery leaves an in-flight request of a run whose process is still connected, and younger
-- than twice the request timeout, to that process, which may still be sending it.
ALTER TABLE sync_runs ADD COLUMN process TEXT NULL;
