-- Payments made in B2B Edition flowing back to the ERP. See docs/ARCHITECTURE.md, "Payments".

-- What the ERP had been paid (total - balance) when the daemon last looked at the invoice: a
-- rise since then is the ERP acknowledging B2B payments (a fall, refunds).
ALTER TABLE invoice_state ADD COLUMN erp_paid NUMERIC NULL;
-- The ERP's own balance at that moment (what a files outbox line starts from).
ALTER TABLE invoice_state ADD COLUMN erp_balance NUMERIC NULL;
CREATE INDEX invoice_state_b2b_id ON invoice_state (source, b2b_invoice_id);

-- How far the B2B payment list has been read, per source: the newest `updatedAt` (B2B's own
-- clock, unix seconds) of the payments seen.
CREATE TABLE payment_cursors (
    source     TEXT        PRIMARY KEY,
    watermark  BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per payment line (payment id, B2B invoice id) and direction: a refund is a second
-- row that reverses the payment's. The write-back follows the ledger protocol on the row:
--   pending    : to be written to the ERP.
--   in_flight  : intent committed, request sent or about to be; outcome unknown until settled.
--   written    : the ERP took it.
--   failed     : refused or unreachable; retried at next_attempt_at (dead after max attempts).
--   dead       : failed too often; `payments retry ID` brings it back.
--   skipped    : not to be written, with the reason (e.g. Rebillia invoice already paid).
--   off        : write-back is off for the source: never sent.
--   unknown    : an ambiguous write the ERP cannot be read back to settle: a person checks,
--                then `payments retry ID`.
-- acknowledged_at: when the ERP's own balance first reflected it; until then the openBalance the
-- daemon pushes to B2B keeps it (so a later ERP push never undoes a B2B payment).
CREATE TABLE payment_events (
    id               BIGSERIAL   PRIMARY KEY,
    source           TEXT        NOT NULL,
    payment_id       BIGINT      NOT NULL,
    b2b_invoice_id   BIGINT      NOT NULL,
    kind             TEXT        NOT NULL CHECK (kind IN ('payment', 'refund')),
    external_id      TEXT        NOT NULL,
    invoice_number   TEXT        NOT NULL,
    amount           NUMERIC     NOT NULL CHECK (amount > 0),
    currency         TEXT        NOT NULL,
    processing_status INTEGER    NOT NULL,
    occurred_at      TIMESTAMPTZ NOT NULL,
    detected_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    detected_run     UUID        NULL,
    acknowledged_at  TIMESTAMPTZ NULL,
    write_state      TEXT        NOT NULL CHECK (write_state IN
                         ('pending', 'in_flight', 'written', 'failed', 'dead', 'skipped', 'off', 'unknown')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NULL,
    target_balance   NUMERIC     NULL,
    before_balance   NUMERIC     NULL,
    note             TEXT        NULL,
    last_error       TEXT        NULL,
    written_at       TIMESTAMPTZ NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source, payment_id, b2b_invoice_id, kind)
);
CREATE INDEX payment_events_unacked ON payment_events (source, external_id) WHERE acknowledged_at IS NULL;
CREATE INDEX payment_events_to_write ON payment_events (source, write_state)
    WHERE write_state IN ('pending', 'in_flight', 'failed');
