-- B2B never goes back to an older ERP version of an invoice. See docs/ARCHITECTURE.md,
-- "Versions". A version is stored as text whose order is the version order (SourceVersion::key).

-- The version of the content B2B holds (with `fingerprint`), and of the kept `pending` record.
ALTER TABLE invoice_state ADD COLUMN erp_version TEXT NULL;
ALTER TABLE invoice_state ADD COLUMN pending_version TEXT NULL;
-- The version a mutation carries: recovery adopts it with the invoice.
ALTER TABLE ledger ADD COLUMN erp_version TEXT NULL;
-- How old the B2B state an update was built from was when it went out (update_freshness).
ALTER TABLE ledger ADD COLUMN state_age_ms INTEGER NULL;

-- Records refused as older than what B2B holds, and invoices skipped while they wait for a retry
-- (or stay in the dead letter / discarded / flagged), apart from the truly unchanged.
ALTER TABLE sync_runs ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;

-- Export files a `files` source has settled, by content: the same export dropped into the folder
-- again (under any name, with any mtime) is recognised and not read a second time.
CREATE TABLE export_files (
    source     TEXT        NOT NULL,
    sha256     TEXT        NOT NULL,
    file_name  TEXT        NOT NULL,
    bytes      BIGINT      NOT NULL,
    settled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, sha256)
);
