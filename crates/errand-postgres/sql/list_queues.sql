-- Every known queue with its pause flag and the totals that survive pruning
-- (summed over the sessions' shard rows).
SELECT q.name, q.paused,
       coalesce(sum(t.completed), 0)::int8 AS completed,
       coalesce(sum(t.failed), 0)::int8 AS failed,
       coalesce(sum(t.discarded), 0)::int8 AS discarded
FROM __SCHEMA__.queues AS q
LEFT JOIN __SCHEMA__.queue_totals AS t ON t.queue = q.name
GROUP BY q.name, q.paused
ORDER BY q.name
