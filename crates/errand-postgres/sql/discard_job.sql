-- An operator's discard: an unstarted job (the states of __DISCARD_FROM__,
-- from errand-core's lifecycle) becomes discarded now ($3), with a record in
-- its history ($4 the time as text, $5 the message) and its queue's
-- discarded total counted. Other states and jobs outside the scope ($2)
-- match nothing: the caller then looks the job up to say why.
-- Locks: the job row, by primary key; this session's shard row of queue_totals.
WITH d AS (
    UPDATE __SCHEMA__.jobs AS j
    SET state = 'discarded',
        finished_at = $3,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', $4::text, 'message', $5::text))
    WHERE j.id = $1 AND ($2::text IS NULL OR j.tenant = $2)
      AND j.state IN (__DISCARD_FROM__)
    RETURNING __JOB__
),
totals AS (
    INSERT INTO __SCHEMA__.queue_totals AS t (queue, shard, completed, failed, discarded)
    SELECT queue, (pg_backend_pid() % 16)::int2, 0, 0, 1 FROM d
    ON CONFLICT (queue, shard) DO UPDATE SET discarded = t.discarded + 1
)
SELECT d.* FROM d
