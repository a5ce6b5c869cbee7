-- Claims the first :limit available jobs of :queue in priority, run_at, id
-- order, walking the partial index jobs_fetch. Runs inside the writer's
-- BEGIN IMMEDIATE transaction, which holds SQLite's single write lock, so no
-- other process can claim the same rows. A paused queue yields nothing.
-- Returns only the ids: materialising whole rows here cost about half the
-- statement's time on the writer thread, which bounds throughput; the rows
-- are read after the commit on a read connection (load_claimed.sql).
UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    attempted_at = :now,
    lease_owner = :owner,
    lease_token = lease_token + 1,
    lease_expires_at = :lease_until
WHERE id IN (
        SELECT id FROM jobs INDEXED BY jobs_fetch
        WHERE state = 'available' AND queue = :queue AND run_at <= :now
          AND (expires_at IS NULL OR expires_at > :now)
        ORDER BY priority, run_at, id
        LIMIT :limit)
  AND NOT EXISTS (SELECT 1 FROM queues WHERE name = :queue AND paused = 1)
RETURNING id
