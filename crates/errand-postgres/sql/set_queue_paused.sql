-- Pauses or resumes a queue, creating it if new. A resumed queue is notified
-- so idle workers look at it at once. Locks: the queue's row.
WITH q AS (
    INSERT INTO __SCHEMA__.queues AS q (name, paused, created_at) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
    RETURNING q.name, q.paused
)
SELECT q.name FROM q
CROSS JOIN LATERAL (SELECT CASE WHEN NOT q.paused THEN pg_notify(__CHANNEL__, q.name) END) AS n
