-- errand PostgreSQL schema, version 2: counters that survive pruning, and
-- leader leases.

-- Per-queue totals, written in the same statement as the completions they
-- count. Each database session adds to its own shard row (its backend pid
-- modulo 16), so completers in several processes do not queue behind one
-- row lock; readers sum the shards.
CREATE TABLE __SCHEMA__.queue_totals (
    queue     text     NOT NULL,
    shard     smallint NOT NULL,
    completed bigint   NOT NULL DEFAULT 0,
    failed    bigint   NOT NULL DEFAULT 0,
    discarded bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, shard)
);

-- One row per leader role: who holds it and until when. A holder renews its
-- lease; anyone may take a lease that has run out.
CREATE TABLE __SCHEMA__.leaders (
    role       text   PRIMARY KEY,
    owner      text   NOT NULL,
    elected_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
