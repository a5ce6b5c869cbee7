-- The earliest run_at of a scheduled or retryable job. Uses jobs_due.
SELECT min(run_at) FROM __SCHEMA__.jobs WHERE state IN ('scheduled', 'retryable')
