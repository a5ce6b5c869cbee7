-- Whether the last run's job is unfinished (primary key lookup).
SELECT id FROM __SCHEMA__.jobs
WHERE id = $1 AND state IN ('scheduled', 'available', 'running', 'retryable')
