-- Records how each tick ($1[i], $2[i]) ended (each schedule at most once):
-- its job $3[i] (NULL when skipped, with outcome $4[i]), and keeps only the
-- latest 100 ticks of each schedule (older ones can never fire again: the
-- cursor is past them). Every data-modifying CTE runs whether or not the
-- main statement reads it; they all read the ticks as they were before it.
WITH d AS (
    SELECT *
    FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[]) AS d(name, fire_at, job_id, outcome)
),
tick AS (
    UPDATE __SCHEMA__.schedule_ticks k SET job_id = d.job_id
    FROM d
    WHERE k.schedule = d.name AND k.fire_at = d.fire_at AND d.job_id IS NOT NULL
),
horizon AS (
    SELECT d.name,
           (SELECT k.fire_at FROM __SCHEMA__.schedule_ticks k
            WHERE k.schedule = d.name ORDER BY k.fire_at DESC LIMIT 1 OFFSET 99) AS fire_at
    FROM d
),
pruned AS (
    DELETE FROM __SCHEMA__.schedule_ticks k
    USING horizon h
    WHERE k.schedule = h.name AND k.fire_at < h.fire_at
)
UPDATE __SCHEMA__.schedules s
SET last_fire = d.fire_at,
    last_job_id = coalesce(d.job_id, s.last_job_id),
    last_outcome = d.outcome
FROM d
WHERE s.name = d.name
