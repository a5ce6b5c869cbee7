-- A job holding the unique key (?1, tenant ?2): one that is unfinished, or,
-- when the new job's period is given (?3 = now - period), one created since.
-- Uses jobs_unique.
SELECT id, state FROM jobs INDEXED BY jobs_unique
WHERE unique_key = ?1 AND tenant IS ?2
  AND (state IN ('scheduled', 'available', 'running', 'retryable') OR (?3 IS NOT NULL AND created_at > ?3))
ORDER BY id DESC
LIMIT 1
