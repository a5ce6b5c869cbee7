-- errand schema version 1.
-- Times are microseconds since the Unix epoch (INTEGER). JSON columns hold text.

CREATE TABLE jobs (
    -- AUTOINCREMENT: ids are never reused, even after the newest jobs are pruned.
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT,
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    attempted_at     INTEGER,
    finished_at      INTEGER,
    expires_at       INTEGER,
    unique_key       TEXT,
    -- NULL: unique while unfinished; else the period in microseconds.
    unique_period_us INTEGER,
    timeout_ms       INTEGER,
    tags             TEXT    NOT NULL DEFAULT '[]',
    meta             TEXT    NOT NULL DEFAULT '{}',
    retry            TEXT,
    progress         TEXT,
    result           TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]',
    lease_owner      TEXT,
    -- The fencing token: incremented by every claim.
    lease_token      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- Fetch reads only available jobs, in claim order: the index stays as small as
-- the backlog however many finished jobs the table holds.
CREATE INDEX jobs_fetch ON jobs (queue, priority, run_at, id) WHERE state = 'available';
-- The promoter looks for the earliest due scheduled/retryable job.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- The rescuer looks for lapsed leases.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
-- The expirer looks for unstarted jobs past their expiry.
CREATE INDEX jobs_expiry ON jobs (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'available', 'retryable');
-- No index serves the pruner: it would cost every completion an index insert
-- (about an eighth of a completion's work), to save a scan that the pruner
-- makes on a read connection, without holding the write lock, once a minute.
-- Unique-key lookups at insert.
CREATE INDEX jobs_unique ON jobs (unique_key, tenant) WHERE unique_key IS NOT NULL;

CREATE TABLE queues (
    name            TEXT    PRIMARY KEY,
    paused          INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    -- Totals that survive pruning.
    completed_total INTEGER NOT NULL DEFAULT 0,
    failed_total    INTEGER NOT NULL DEFAULT 0,
    discarded_total INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE leaders (
    role       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
