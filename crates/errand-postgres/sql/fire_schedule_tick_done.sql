-- Records how tick $2 of schedule $1 ended: its job $3 (NULL when skipped,
-- with outcome $4), and keeps only the latest 100 ticks of the schedule
-- (older ones can never fire again: the cursor is past them). Every
-- data-modifying CTE runs whether or not the main statement reads it.
WITH tick AS (
    UPDATE __SCHEMA__.schedule_ticks SET job_id = $3
    WHERE schedule = $1 AND fire_at = $2
),
pruned AS (
    DELETE FROM __SCHEMA__.schedule_ticks
    WHERE schedule = $1 AND fire_at < (
        SELECT fire_at FROM __SCHEMA__.schedule_ticks
        WHERE schedule = $1 ORDER BY fire_at DESC LIMIT 1 OFFSET 99)
)
UPDATE __SCHEMA__.schedules
SET last_fire = $2,
    last_job_id = coalesce($3, last_job_id),
    last_outcome = $4
WHERE name = $1
