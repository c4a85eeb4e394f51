-- ERP customer id -> B2B Edition company id, per source.
--   origin 'import': rows from `b2b-invoice-sync customers import`; they never expire and win
--                    over lookups (an operator's explicit mapping).
--   origin 'lookup': results of the B2B companies API lookup, cached until updated_at + TTL;
--                    company_id NULL records "no such company" (a short negative cache).
CREATE TABLE customer_map (
    source               TEXT        NOT NULL,
    external_customer_id TEXT        NOT NULL,
    company_id           TEXT        NULL,
    origin               TEXT        NOT NULL CHECK (origin IN ('import', 'lookup')),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, external_customer_id),
    CHECK (origin = 'lookup' OR company_id IS NOT NULL)
);
