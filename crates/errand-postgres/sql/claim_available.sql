-- Claims up to $2 available jobs of queue $1, in priority, run_at, id order,
-- walking the partial index jobs_fetch (only available rows are in it).
-- Locks: FOR UPDATE SKIP LOCKED on the candidate rows only, so concurrent
-- claimers take disjoint jobs instead of queueing behind each other. A
-- paused queue yields nothing. Each claim adds one to the job's lease token
-- (the fencing token). RETURNING has no order: the caller sorts.
-- Durability: the claim commits without waiting for its WAL flush
-- (synchronous_commit off, for this transaction only). A claim lost in a
-- server crash leaves the job available: it runs again, as any job whose
-- worker dies does, and the lost attempt's completion is refused by the
-- lease token. Nothing a producer was told is stored depends on it, and
-- an idle queue's job starts one disk flush sooner.
-- $3 now, $4 owner, $5 lease deadline.
WITH async_commit AS (
    SELECT set_config('synchronous_commit', 'off', true)
)
UPDATE __SCHEMA__.jobs AS j
SET state = 'running',
    attempt = j.attempt + 1,
    attempted_at = $3,
    lease_owner = $4,
    lease_token = j.lease_token + 1,
    lease_expires_at = $5
-- The picked ids as an array, looked up in the primary key: a join with the
-- picking subquery let the planner hash the whole table when it expected
-- many rows (a generic plan does, not knowing the LIMIT).
WHERE j.id = ANY (ARRAY(
        SELECT id FROM __SCHEMA__.jobs
        WHERE state = 'available' AND queue = $1 AND run_at <= $3
          AND (expires_at IS NULL OR expires_at > $3)
          AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.queues WHERE name = $1 AND paused)
        ORDER BY priority, run_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED))
  -- Referencing the CTE makes it run (an unreferenced SELECT CTE never does).
  AND (SELECT count(*) FROM async_commit) = 1
RETURNING __JOB__
