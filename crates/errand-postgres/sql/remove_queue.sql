-- An operator removes a queue's record (pause flag, totals) if it holds no
-- unfinished job ($2: the finished states, from errand-core). Says whether
-- the queue was known and how many unfinished jobs kept it.
-- Locks: the queue's row, so no pause races the removal.
WITH q AS (
    SELECT name FROM __SCHEMA__.queues WHERE name = $1 FOR UPDATE
),
busy AS (
    SELECT count(*) AS n FROM __SCHEMA__.jobs AS j
    WHERE j.queue = $1 AND NOT (j.state = ANY ($2::text[]))
),
gone AS (
    DELETE FROM __SCHEMA__.queues AS d
    USING q, busy
    WHERE d.name = q.name AND busy.n = 0
    RETURNING d.name
),
totals AS (
    DELETE FROM __SCHEMA__.queue_totals AS t
    USING gone
    WHERE t.queue = gone.name
)
SELECT EXISTS (SELECT 1 FROM q) AS known, (SELECT n FROM busy) AS unfinished
