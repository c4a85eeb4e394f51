-- One process works a store at a time (docs/ARCHITECTURE.md, "One process per store"): it holds
-- the store's lease, so one process spends the store's whole request budget, whatever the
-- number of replicas. Leases expire unless renewed; a process stops sending for a store before
-- its lease can expire, and another takes it only after it has. Every change a cycle makes checks
-- in its own transaction that the lease, by holder and token, is still its own.

-- The daemon replicas alive: each renews its row every few seconds (stores are shared out among
-- the live ones).
CREATE TABLE replicas (
    id           TEXT        PRIMARY KEY,
    hostname     TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per store: who holds it (a replica, or a one-off command for its cycle), on which
-- host, until when. Every take bumps `token`; `moves` counts hand-overs. The holder's process id
-- and start time let a process on the same host take over at once from one that died (a crash,
-- a restart) instead of waiting for the lease to expire.
CREATE TABLE store_leases (
    store        TEXT        PRIMARY KEY,
    holder       TEXT        NULL,
    holder_host  TEXT        NULL,
    holder_pid   INTEGER     NULL,
    holder_start TEXT        NULL,
    token        BIGINT      NOT NULL DEFAULT 0,
    acquired_at  TIMESTAMPTZ NULL,
    renewed_at   TIMESTAMPTZ NULL,
    expires_at   TIMESTAMPTZ NULL,
    moves        BIGINT      NOT NULL DEFAULT 0
);
