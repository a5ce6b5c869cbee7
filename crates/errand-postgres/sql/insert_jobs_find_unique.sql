-- Stored jobs that may hold one of the batch's unique keys: every unfinished
-- one, and any created after $2 (now minus the longest period in the batch).
-- The caller matches tenants and each job's own mode. Uses jobs_unique.
-- Runs under the advisory locks of insert_jobs_lock_keys.sql: no row locks.
SELECT id, tenant, unique_key, state, created_at
FROM __SCHEMA__.jobs
WHERE unique_key = ANY($1::text[])
  AND (state IN ('scheduled', 'available', 'running', 'retryable') OR created_at > $2)
