-- Running jobs whose lease lapsed before $1 (their worker died or stalled),
-- oldest lapse first. Uses jobs_leases. FOR UPDATE SKIP LOCKED: the rows stay
-- locked until the transaction writes their new state (with
-- complete_batch.sql, fenced by the token read here), and a second rescuer
-- or a completer holding one of them is skipped rather than waited for.
SELECT id, queue, kind, attempt, max_attempts, retry::text AS retry, lease_owner, lease_token
FROM __SCHEMA__.jobs
WHERE state = 'running' AND lease_expires_at < $1
ORDER BY lease_expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
