-- errand schema version 2: schedule bookkeeping.

-- One row per schedule any scheduler registered. `next_fire` is the cursor:
-- the earliest tick not handled yet. A tick fires only by moving it from the
-- value the scheduler read (compare-and-set), so racing schedulers handle each
-- tick once and in order. `fingerprint` hashes the whole definition: a
-- scheduler running an older one cannot fire after a re-sync.
CREATE TABLE schedules (
    name          TEXT    PRIMARY KEY,
    spec          TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    enabled       INTEGER NOT NULL,
    next_fire     INTEGER,
    last_fire     INTEGER,
    last_job_id   INTEGER,
    -- NULL: never fired; 'enqueued' or 'skipped_overlap'.
    last_outcome  TEXT,
    registered_at INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    removed_at    INTEGER
) WITHOUT ROWID;

-- Every fired or skipped tick, unique on (schedule, fire time): the insert
-- that makes a second firing of one tick impossible. Only the latest ticks of
-- each schedule are kept (see fire_schedule_tick).
CREATE TABLE schedule_ticks (
    schedule TEXT    NOT NULL,
    fire_at  INTEGER NOT NULL,
    job_id   INTEGER,
    fired_at INTEGER NOT NULL,
    PRIMARY KEY (schedule, fire_at)
) WITHOUT ROWID;
