-- The unique key and tenant of a job an operator retries ($2: the scope's
-- tenant or NULL), when it is in a state a retry revives. Reads the row by
-- primary key.
SELECT j.unique_key, j.tenant FROM __SCHEMA__.jobs AS j
WHERE j.id = $1 AND ($2::text IS NULL OR j.tenant = $2)
  AND j.state IN ('discarded', 'cancelled', 'expired', 'retryable', 'scheduled')
