-- The sync engine's state. See docs/ARCHITECTURE.md, "The sync protocol".

-- One row per configured source: its cursor (the updated-since watermark of committed pages).
CREATE TABLE sources (
    name       TEXT        PRIMARY KEY,
    cursor     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What the daemon last synced for each ERP invoice, and how its latest attempt went.
--   status 'synced'   : B2B holds `fingerprint`'s content.
--   status 'failed'   : the last attempt failed; retried at next_attempt_at from `pending`.
--   status 'dead'     : failed max_attempts times: the dead letter, until `failures retry`.
--   status 'discarded': an operator gave up on it (`failures discard`); retried only when the ERP changes it.
--   status 'deleted'  : deleted or voided in the ERP and handled per policy.
--   status 'flagged'  : needs a person (e.g. deleted in the ERP but paid in B2B).
-- A failure never overwrites fingerprint/owned: they keep the last content B2B really holds.
CREATE TABLE invoice_state (
    id                BIGSERIAL   NOT NULL UNIQUE,
    source            TEXT        NOT NULL,
    external_id       TEXT        NOT NULL,
    invoice_number    TEXT        NOT NULL,
    b2b_invoice_id    BIGINT      NULL,
    fingerprint       TEXT        NULL,
    owned             JSONB       NULL,
    -- The open balance last written to B2B (payments made in B2B lower it there).
    written_open      NUMERIC     NULL,
    status            TEXT        NOT NULL CHECK (status IN ('synced', 'failed', 'dead', 'discarded', 'deleted', 'flagged')),
    -- The ERP record behind a failure (canonical schema), so it can be retried without the ERP
    -- sending it again; and the fingerprint of that content, to notice when the ERP changes it.
    pending           JSONB       NULL,
    pending_fingerprint TEXT      NULL,
    last_synced_at    TIMESTAMPTZ NULL,
    last_attempted_at TIMESTAMPTZ NULL,
    attempts          INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ NULL,
    last_error        TEXT        NULL,
    PRIMARY KEY (source, external_id)
);
CREATE INDEX invoice_state_due ON invoice_state (source, next_attempt_at) WHERE status = 'failed';
CREATE INDEX invoice_state_problems ON invoice_state (status) WHERE status IN ('failed', 'dead', 'flagged');

-- One row per attempted mutation of B2B, written *before* the request is sent.
CREATE TABLE ledger (
    id               BIGSERIAL   PRIMARY KEY,
    source           TEXT        NOT NULL,
    external_id      TEXT        NOT NULL,
    invoice_number   TEXT        NOT NULL,
    op               TEXT        NOT NULL CHECK (op IN ('create', 'update', 'delete', 'zero_balance')),
    fingerprint      TEXT        NULL,
    -- The canonical owned content the request carries (becomes invoice_state.owned on success).
    owned            JSONB       NULL,
    written_open     NUMERIC     NULL,
    state            TEXT        NOT NULL CHECK (state IN ('in_flight', 'succeeded', 'failed', 'abandoned')),
    b2b_invoice_id   BIGINT      NULL,
    request_digest   TEXT        NULL,
    response_status  INTEGER     NULL,
    response_excerpt TEXT        NULL,
    attempt          INTEGER     NOT NULL DEFAULT 1,
    run_id           UUID        NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one mutation of an invoice may be in flight: the database itself refuses a second
-- POST while the first one's outcome is unknown.
CREATE UNIQUE INDEX ledger_one_in_flight ON ledger (source, external_id) WHERE state = 'in_flight';
CREATE INDEX ledger_created_at ON ledger (created_at);

-- One row per cycle of a source.
CREATE TABLE sync_runs (
    id          UUID        PRIMARY KEY,
    source      TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ NULL,
    outcome     TEXT        NULL CHECK (outcome IN ('ok', 'partial', 'failed', 'skipped')),
    created     INTEGER     NOT NULL DEFAULT 0,
    updated     INTEGER     NOT NULL DEFAULT 0,
    unchanged   INTEGER     NOT NULL DEFAULT 0,
    deleted     INTEGER     NOT NULL DEFAULT 0,
    failed      INTEGER     NOT NULL DEFAULT 0,
    recovered   INTEGER     NOT NULL DEFAULT 0,
    api_calls   BIGINT      NOT NULL DEFAULT 0,
    error       TEXT        NULL
);
CREATE INDEX sync_runs_source_started ON sync_runs (source, started_at DESC);
CREATE INDEX sync_runs_started ON sync_runs (started_at);
