-- Of the running jobs $1, those an operator asked to cancel. A read, asked
-- whenever the store may have changed, so a cancel reaches its worker at once.
-- Reads: the jobs' rows, by primary key.
SELECT j.id FROM __SCHEMA__.jobs AS j
WHERE j.id = ANY ($1::bigint[]) AND j.state = 'running' AND j.cancel_requested
