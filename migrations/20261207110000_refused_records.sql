-- ERP records a source could not take (an unknown currency, a malformed CSV row, a value beyond
-- the source's sanity limits): what operators see in `failures list` and `status` until the ERP
-- sends the invoice again in a form that can be taken (or an operator dismisses the row).
--   record_key: 'id:<external_id>' when the record's id could be read (one row per refused
--               invoice: a later refusal of it replaces the reason), else 'at:<file> line <n>'
--               (or the adapter's locator): such a row stays until `failures dismiss`.
-- A valid record of the same external id read from the source deletes the row.
CREATE TABLE refused_records (
    id               BIGSERIAL   PRIMARY KEY,
    source           TEXT        NOT NULL,
    record_key       TEXT        NOT NULL,
    external_id      TEXT        NULL,
    file             TEXT        NULL,
    line             BIGINT      NULL,
    field            TEXT        NULL,
    reason           TEXT        NOT NULL,
    first_refused_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_refused_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    times_refused    INTEGER     NOT NULL DEFAULT 1,
    run_id           UUID        NULL,
    UNIQUE (source, record_key)
);
