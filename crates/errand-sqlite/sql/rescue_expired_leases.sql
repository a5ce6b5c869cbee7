-- Running jobs whose lease lapsed (their worker died or stalled). Uses jobs_leases.
SELECT id, queue, kind, attempt, max_attempts, retry, lease_owner, lease_token, lease_expires_at FROM jobs INDEXED BY jobs_leases
WHERE state = 'running' AND lease_expires_at < ?1
ORDER BY lease_expires_at
LIMIT ?2
