-- The batch insert of insert_jobs.sql without its NOTIFY: used by the
-- store's own (autocommit) inserts, which notify after the commit from a
-- separate connection. A transaction that issues NOTIFY holds PostgreSQL's
-- notify-queue lock through its commit, WAL flush included, so notifying
-- inserts cannot share a flush: concurrent single enqueues fell to one
-- commit per flush. Same locks and ordering as insert_jobs.sql.
-- $1 now; $2.. the job columns.
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
)
SELECT id, state FROM inserted
ORDER BY id
