-- Another unfinished job ($4: the unfinished states, from errand-core)
-- holding the unique key ($1, tenant $2) than job $3: retrying $3 would make
-- two unfinished jobs with one key. Runs under the key's advisory lock
-- (insert_jobs_lock_keys.sql). Uses jobs_unique.
SELECT j.id FROM __SCHEMA__.jobs AS j
WHERE j.unique_key = $1 AND j.tenant IS NOT DISTINCT FROM $2 AND j.id <> $3
  AND j.state = ANY ($4::text[])
ORDER BY j.id DESC
LIMIT 1
