-- An operator's retry: a discarded, cancelled, expired, retryable or
-- scheduled job becomes available now, with one more attempt allowed if it
-- had used them all, and without an expiry that has already passed.
-- Jobs in other states than __RETRY_FROM__ (from errand-core's lifecycle),
-- and jobs outside the scope ($2), match nothing: the caller then looks the job up to say why.
-- Locks: the job row, by primary key. Notifies the job's queue.
WITH retried AS (
    UPDATE __SCHEMA__.jobs AS j
    SET state = 'available',
        run_at = $3,
        finished_at = NULL,
        cancel_requested = false,
        max_attempts = greatest(j.max_attempts, j.attempt + 1),
        expires_at = CASE WHEN j.expires_at <= $3 THEN NULL ELSE j.expires_at END
    WHERE j.id = $1 AND ($2::text IS NULL OR j.tenant = $2)
      AND j.state IN (__RETRY_FROM__)
    RETURNING __JOB__
),
queue AS (
    INSERT INTO __SCHEMA__.queues (name, created_at)
    SELECT queue, $3 FROM retried
    ON CONFLICT (name) DO NOTHING
)
SELECT retried.* FROM retried
CROSS JOIN LATERAL (SELECT pg_notify(__CHANNEL__, retried.queue)) AS n
