-- Jobs per queue and state. This reads the whole table (a sequential or
-- index-only scan): it is for operators and metrics scrapes, not the hot
-- path; pruning keeps it bounded.
-- $1: only this tenant's jobs (NULL: every job).
SELECT queue, state, count(*)::int8 AS n FROM __SCHEMA__.jobs
WHERE ($1::text IS NULL OR tenant = $1)
GROUP BY queue, state
