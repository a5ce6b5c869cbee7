-- Records how a batch of attempts ended, in one statement.
-- Fencing: a job is written only while it is running under the caller's
-- lease token. A rescued or re-claimed job has a larger token, so a stale
-- worker's write matches nothing and is reported as lease lost.
-- Locks: the job rows, found by primary key; then this session's shard row
-- of queue_totals for each queue (sorted by name, so two batches cannot
-- deadlock on them). The totals are added in the same transaction as the
-- completions they count, so they can never disagree; deleted jobs count
-- as completed.
-- Jobs handed back become available again: their queues are notified.
-- $1 now; arrays, one element per completion: $2 id, $3 lease token,
-- $4 new state, $5 run_at (NULL: unchanged), $6 result, $7 error record
-- (appended to the history), $8 whether the attempt is given back,
-- $9 whether it counts as a failure, $10 whether the job is deleted
-- instead of kept (a success in a queue that keeps no completed jobs: one
-- DELETE, no new row version, no index entries). $4..$10 may instead hold the one
-- element every completion shares (a batch of plain successes usually
-- does); the test and the element are init plans, read once per batch
-- (about 7% less server time per job than unnesting them in full).
WITH input AS (
    SELECT u.id, u.token,
           CASE WHEN (SELECT cardinality($4::text[]) = 1) THEN (SELECT $4[1]) ELSE u.state END AS state,
           CASE WHEN (SELECT cardinality($5::int8[]) = 1) THEN (SELECT $5[1]) ELSE u.run_at END AS run_at,
           CASE WHEN (SELECT cardinality($6::text[]) = 1) THEN (SELECT $6[1]) ELSE u.result END AS result,
           CASE WHEN (SELECT cardinality($7::text[]) = 1) THEN (SELECT $7[1]) ELSE u.error END AS error,
           CASE WHEN (SELECT cardinality($8::bool[]) = 1) THEN (SELECT $8[1]) ELSE u.give_back END AS give_back,
           CASE WHEN (SELECT cardinality($9::bool[]) = 1) THEN (SELECT $9[1]) ELSE u.failed END AS failed,
           CASE WHEN (SELECT cardinality($10::bool[]) = 1) THEN (SELECT $10[1]) ELSE u.remove END AS remove
    FROM unnest($2::int8[], $3::int8[], $4::text[], $5::int8[], $6::text[],
                $7::text[], $8::bool[], $9::bool[], $10::bool[])
        AS u(id, token, state, run_at, result, error, give_back, failed, remove)
),
kept AS (
    UPDATE __SCHEMA__.jobs AS j
    SET state = i.state,
        run_at = coalesce(i.run_at, j.run_at),
        finished_at = CASE WHEN i.state IN ('completed', 'discarded', 'cancelled', 'expired')
                           THEN $1 ELSE j.finished_at END,
        attempt = CASE WHEN i.give_back THEN j.attempt - 1 ELSE j.attempt END,
        result = CASE WHEN i.state = 'completed' THEN i.result::json ELSE j.result END,
        errors = CASE WHEN i.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(i.error::jsonb) END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM input AS i
    -- The input drives the plan: each job is found by primary key. The
    -- running check is written as a CASE so that the planner does not
    -- estimate it: statistics taken while few jobs ran say almost none do,
    -- and the planner then put the jobs outside and rescanned the whole input
    -- once per job. (So did `j.id = ANY ($2)` beside the join, under a
    -- generic plan: quadratic, 0.7 s for a batch of 2000 instead of 16 ms.)
    WHERE j.id = i.id AND j.lease_token = i.token
      AND CASE j.state WHEN 'running' THEN true ELSE false END
      AND NOT i.remove
    RETURNING j.id, j.queue, i.state, i.failed
),
-- The same fence, and the same plan: each job found by primary key.
removed AS (
    DELETE FROM __SCHEMA__.jobs AS j
    USING input AS i
    WHERE j.id = i.id AND j.lease_token = i.token
      AND CASE j.state WHEN 'running' THEN true ELSE false END
      AND i.remove
    RETURNING j.id, j.queue, i.state, i.failed
),
done AS (
    SELECT id, queue, state, failed FROM kept
    UNION ALL
    SELECT id, queue, state, failed FROM removed
),
totals AS (
    INSERT INTO __SCHEMA__.queue_totals AS t (queue, shard, completed, failed, discarded)
    SELECT queue, (pg_backend_pid() % 16)::int2,
           count(*) FILTER (WHERE state = 'completed'),
           count(*) FILTER (WHERE failed),
           count(*) FILTER (WHERE state = 'discarded')
    FROM done
    WHERE state = 'completed' OR failed
    GROUP BY queue
    ORDER BY queue
    ON CONFLICT (queue, shard) DO UPDATE
    SET completed = t.completed + excluded.completed,
        failed = t.failed + excluded.failed,
        discarded = t.discarded + excluded.discarded
),
notified AS (
    SELECT pg_notify(__CHANNEL__, q.queue)
    FROM (SELECT DISTINCT queue FROM done WHERE state = 'available') AS q
)
-- The count forces the notify CTE to run (an unreferenced SELECT CTE never does).
SELECT id FROM done
WHERE (SELECT count(*) FROM notified) >= 0
