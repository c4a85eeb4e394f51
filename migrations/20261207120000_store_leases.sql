-- Many stores across many replicas (docs/ARCHITECTURE.md, "Stores across replicas"): a replica
-- works a store only while it holds the store's lease, so one process holds the store's whole
-- request budget. Leases expire unless renewed; a replica stops sending for a store before its
-- lease can expire, and another takes it only after it has.

-- The replicas alive: each renews its row every few seconds.
CREATE TABLE replicas (
    id           TEXT        PRIMARY KEY,
    hostname     TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per store: who holds it, until when. `moves` counts hand-overs (for the metric).
CREATE TABLE store_leases (
    store        TEXT        PRIMARY KEY,
    holder       TEXT        NULL,
    token        BIGINT      NOT NULL DEFAULT 0,
    acquired_at  TIMESTAMPTZ NULL,
    renewed_at   TIMESTAMPTZ NULL,
    expires_at   TIMESTAMPTZ NULL,
    moves        BIGINT      NOT NULL DEFAULT 0
);
