-- What a store's B2B Edition makes of what the documents leave open, learned and re-checked now
-- and then (docs/ARCHITECTURE.md, "Finding invoices by ERP id"): how `externalId[]` (typed
-- array[number] in the spec while externalId is a string) reads a value that is not a number.
CREATE TABLE b2b_capabilities (
    store              TEXT        PRIMARY KEY,
    -- 'strings': matched as strings; 'numbers_only': 400 for a value that is not a number;
    -- 'ignored': the filter is not honoured (values dropped, the list comes back unfiltered).
    external_id_filter TEXT        NOT NULL CHECK (external_id_filter IN ('strings', 'numbers_only', 'ignored')),
    checked_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
