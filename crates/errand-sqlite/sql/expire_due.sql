-- Unstarted jobs past their expiry end as expired; they are never run. Uses jobs_expiry.
UPDATE jobs SET state = 'expired', finished_at = ?1
WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_expiry
             WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'available', 'retryable')
               AND expires_at <= ?1
             LIMIT ?2)
