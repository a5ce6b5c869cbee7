-- Inserts a whole batch in one statement: each parameter is an array with one
-- element per job, unnested together in input order (WITH ORDINALITY), so ids
-- are assigned in input order and the caller maps sorted ids back to inputs.
-- Locks: only the new rows. New queue names are added to `queues`; ON
-- CONFLICT DO NOTHING takes no lock on a queue that exists (names are sorted
-- so two batches creating the same new queues cannot deadlock).
-- With $15, notifies the listeners of queues that received available jobs;
-- PostgreSQL delivers the notification when the transaction commits, so a
-- job enqueued inside an application's transaction wakes workers only if it
-- commits. Without it pg_notify never runs: the store's own inserts notify
-- after their commit instead, from another connection, because a
-- transaction that notifies holds the notify-queue lock through its commit,
-- WAL flush included, so notifying inserts cannot share a flush.
-- $1 now; $2..$14 the job columns; $15 whether to notify.
WITH new_queues AS (
    INSERT INTO __SCHEMA__.queues (name, created_at)
    SELECT DISTINCT q, $1 FROM unnest($3::text[]) AS q ORDER BY q
    ON CONFLICT (name) DO NOTHING
),
inserted AS (
    INSERT INTO __SCHEMA__.jobs (
        tenant, queue, kind, args, priority, state, max_attempts, run_at, created_at,
        expires_at, unique_key, timeout_ms, tags, meta, retry)
    SELECT t.tenant, t.queue, t.kind, t.args::json, t.priority,
           CASE WHEN t.run_at <= $1 THEN 'available' ELSE 'scheduled' END,
           t.max_attempts, t.run_at, $1, t.expires_at, t.unique_key, t.timeout_ms,
           t.tags::jsonb, t.meta::json, t.retry::jsonb
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::int4[],
                $8::int8[], $9::int8[], $10::text[], $11::int8[], $12::text[], $13::text[],
                $14::text[])
         WITH ORDINALITY AS t(tenant, queue, kind, args, priority, max_attempts,
                              run_at, expires_at, unique_key, timeout_ms, tags, meta,
                              retry, ord)
    ORDER BY t.ord
    RETURNING id, queue, state
),
notified AS (
    SELECT pg_notify(__CHANNEL__, q.queue)
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') AS q
    WHERE $15::bool
)
-- The count forces the notify CTE to run (an unreferenced SELECT CTE never does).
SELECT id, state FROM inserted
WHERE (SELECT count(*) FROM notified) >= 0
ORDER BY id
