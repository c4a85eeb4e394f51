-- The unified adapter's own memory (src/source/unified/keep.rs), kept apart from invoice_state.
--
-- unified_refs: the API's own id of each invoice (Alloy's `id` UUID), by the ERP id that is the
-- B2B externalId (`remoteId`). Every GET/PUT of one invoice on Alloy takes Alloy's id, so the
-- payments write-back looks it up here. Filled as pages are read; a live record's id wins over
-- a deleted one's for the same remoteId.
CREATE TABLE unified_refs (
    source      text NOT NULL,
    external_id text NOT NULL,
    api_id      text NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (source, external_id)
);

-- unified_customers: the API's customer id (Alloy's customer UUID, what an invoice's
-- `customerId` holds) -> the customer's ERP id (`remoteId`) and name, read from
-- GET /accounting/customers (whole, every customers_refresh_secs) or GET .../customers/{id}.
CREATE TABLE unified_customers (
    source     text NOT NULL,
    api_id     text NOT NULL,
    remote_id  text NOT NULL,
    name       text,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, api_id)
);

-- When each source last read its customers list whole.
CREATE TABLE unified_customer_refreshes (
    source       text PRIMARY KEY,
    refreshed_at timestamptz NOT NULL
);
