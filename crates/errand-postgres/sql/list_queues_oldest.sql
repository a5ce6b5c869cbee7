-- The oldest available job's run_at per queue. Reads only the partial index
-- jobs_fetch (the backlog).
SELECT queue, min(run_at) AS oldest FROM __SCHEMA__.jobs WHERE state = 'available' GROUP BY queue
