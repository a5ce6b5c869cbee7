-- Scheduled and retryable jobs whose time has come become available. Uses jobs_due.
UPDATE jobs SET state = 'available'
WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_due
             WHERE state IN ('scheduled', 'retryable') AND run_at <= ?1
             ORDER BY run_at LIMIT ?2)
RETURNING queue
