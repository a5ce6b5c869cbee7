-- Scheduled and retryable jobs whose run_at has come become available, the
-- earliest first. Uses jobs_due. FOR UPDATE SKIP LOCKED: two maintenance
-- loops never wait on each other. Notifies the queues that received jobs.
WITH promoted AS (
    UPDATE __SCHEMA__.jobs AS j SET state = 'available'
    -- An id array, not a join: see claim_available.sql.
    WHERE j.id = ANY (ARRAY(
        SELECT id FROM __SCHEMA__.jobs
        WHERE state IN ('scheduled', 'retryable') AND run_at <= $1
        ORDER BY run_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED))
    RETURNING j.queue
)
SELECT q.queue
FROM (SELECT DISTINCT queue FROM promoted) AS q
CROSS JOIN LATERAL (SELECT pg_notify(__CHANNEL__, q.queue)) AS n
