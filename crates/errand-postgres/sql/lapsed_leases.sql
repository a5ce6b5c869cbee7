-- Running jobs whose lease lapsed before $1 (their worker died or stalled),
-- oldest lapse first, at most $2. A read: the engine decides each rescue and
-- writes it with rescue_lapsed.sql + complete_batch.sql. Uses jobs_leases.
SELECT id, queue, kind, attempt, max_attempts, retry::text AS retry, lease_owner, lease_token,
       lease_expires_at
FROM __SCHEMA__.jobs
WHERE state = 'running' AND lease_expires_at < $1
ORDER BY lease_expires_at
LIMIT $2
