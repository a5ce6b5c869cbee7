-- Deletes the candidates (JSON array ?1) that are still finished before ?2:
-- an operator may have retried one since the read. Primary-key lookups.
DELETE FROM jobs
WHERE id IN (SELECT value FROM json_each(?1))
  AND finished_at IS NOT NULL AND finished_at < ?2
