-- errand PostgreSQL schema, version 3: schedule bookkeeping.

-- One row per schedule any scheduler registered. `next_fire` is the cursor:
-- the earliest tick not handled yet. A tick fires only by moving it from the
-- value the scheduler read (compare-and-set under the row lock), so racing
-- schedulers handle each tick once and in order. `fingerprint` hashes the
-- whole definition: a scheduler running an older one cannot fire after a
-- re-sync. Times are microseconds since the Unix epoch, like the jobs table.
CREATE TABLE __SCHEMA__.schedules (
    name          text    PRIMARY KEY,
    spec          text    NOT NULL,
    fingerprint   text    NOT NULL,
    enabled       boolean NOT NULL,
    next_fire     bigint,
    last_fire     bigint,
    last_job_id   bigint,
    -- NULL: never fired; 'enqueued' or 'skipped_overlap'.
    last_outcome  text    CHECK (last_outcome IN ('enqueued', 'skipped_overlap')),
    registered_at bigint  NOT NULL,
    updated_at    bigint  NOT NULL,
    removed_at    bigint
);

-- Every fired or skipped tick, unique on (schedule, fire time): the insert
-- that makes a second firing of one tick impossible. Only the latest ticks of
-- each schedule are kept.
CREATE TABLE __SCHEMA__.schedule_ticks (
    schedule text   NOT NULL,
    fire_at  bigint NOT NULL,
    job_id   bigint,
    fired_at bigint NOT NULL,
    PRIMARY KEY (schedule, fire_at)
);
