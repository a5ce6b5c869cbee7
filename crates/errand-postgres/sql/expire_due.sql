-- Unstarted jobs past their expiry end as expired; they are never run.
-- Uses jobs_expiry. FOR UPDATE SKIP LOCKED: a job being claimed right now is
-- left alone (the claim itself refuses expired jobs).
UPDATE __SCHEMA__.jobs AS j SET state = 'expired', finished_at = $1
-- An id array, not a join: see claim_available.sql.
WHERE j.id = ANY (ARRAY(
    SELECT id FROM __SCHEMA__.jobs
    WHERE expires_at IS NOT NULL AND expires_at <= $1
      AND state IN ('scheduled', 'available', 'retryable')
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED))
