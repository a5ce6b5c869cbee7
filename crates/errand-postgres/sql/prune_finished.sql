-- Deletes up to $2 jobs that finished before $1, oldest first: in queue $3,
-- or, when $3 is NULL, in any queue not listed in $4. Bounded so each
-- transaction stays short; the maintenance loop calls it again while it
-- returns $2. Uses jobs_finished. SKIP LOCKED: rows an operator is touching
-- right now are left for the next round.
DELETE FROM __SCHEMA__.jobs AS j
-- An id array, not a join: see claim_available.sql.
WHERE j.id = ANY (ARRAY(
    SELECT id FROM __SCHEMA__.jobs
    WHERE finished_at IS NOT NULL AND finished_at < $1
      AND ($3::text IS NULL OR queue = $3)
      AND queue <> ALL($4::text[])
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED))
