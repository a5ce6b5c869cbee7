-- Finished jobs older than ?2 in the queue(s) the request names, up to ?4.
-- Runs on a read connection, so its table scan (no index serves it, see the
-- migration) never holds the write lock. ?1 a queue or NULL for every queue
-- not in the JSON array ?3.
SELECT id FROM jobs
WHERE finished_at IS NOT NULL AND finished_at < ?2
  AND CASE WHEN ?1 IS NOT NULL THEN queue = ?1
           ELSE queue NOT IN (SELECT value FROM json_each(?3)) END
LIMIT ?4
