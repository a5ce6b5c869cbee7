-- Picks the first ?3 available jobs of queue ?1 that are due at ?2, in
-- priority, run_at, id order, walking the partial index jobs_fetch. A paused
-- queue yields nothing. Runs inside the writer's BEGIN IMMEDIATE transaction,
-- which holds SQLite's single write lock: nothing can claim these rows between
-- this read and claim_update.sql, which marks them.
-- Two statements and not one UPDATE … RETURNING: SQLite runs RETURNING
-- through an ephemeral table, and `id IN (SELECT …)` copies the ids into
-- another.
SELECT id FROM jobs INDEXED BY jobs_fetch
WHERE state = 'available' AND queue = ?1 AND run_at <= ?2
  AND (expires_at IS NULL OR expires_at > ?2)
  AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ?1 AND paused = 1)
ORDER BY priority, run_at, id
LIMIT ?3
