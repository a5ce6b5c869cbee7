-- Pauses or resumes a queue; an unknown queue is created when $4 is true,
-- else nothing is written and no row returned (the caller says "not found").
-- A resumed queue is notified so idle workers look at it at once.
-- Locks: the queue's row.
WITH up AS (
    UPDATE __SCHEMA__.queues AS q SET paused = $2
    WHERE q.name = $1
    RETURNING q.name, q.paused
),
created AS (
    INSERT INTO __SCHEMA__.queues AS q (name, paused, created_at)
    SELECT $1, $2, $3 WHERE $4 AND NOT EXISTS (SELECT 1 FROM up)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
    RETURNING q.name, q.paused
),
q AS (
    SELECT name, paused FROM up
    UNION ALL
    SELECT name, paused FROM created
)
SELECT q.name FROM q
CROSS JOIN LATERAL (SELECT CASE WHEN NOT q.paused THEN pg_notify(__CHANNEL__, q.name) END) AS n
