-- Another unfinished job (?4: the unfinished states, from errand-core)
-- holding the unique key (?1, tenant ?2) than job ?3: an operator's retry of
-- ?3 would make two unfinished jobs with one key. Uses jobs_unique.
SELECT id FROM jobs INDEXED BY jobs_unique
WHERE unique_key = ?1 AND tenant IS ?2 AND id <> ?3
  AND state IN (SELECT value FROM json_each(?4))
ORDER BY id DESC
LIMIT 1
