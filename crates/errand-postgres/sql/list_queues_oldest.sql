-- When the longest-waiting available job of each queue became available:
-- when it was due, or when it was enqueued if it was enqueued already due
-- (a run_at in the past). Reads only the backlog (state = 'available').
-- $1: only this tenant's jobs (NULL: every job).
SELECT queue, min(GREATEST(run_at, created_at)) AS oldest FROM __SCHEMA__.jobs
WHERE state = 'available' AND ($1::text IS NULL OR tenant = $1)
GROUP BY queue
