-- An operator clears a queue: its jobs waiting to run ($2: the waiting
-- states, from errand-core) that the scope ($3, a tenant or NULL) may see are
-- deleted. Running and finished jobs stay.
-- Locks: the deleted rows.
DELETE FROM __SCHEMA__.jobs AS j
WHERE j.queue = $1 AND j.state = ANY ($2::text[])
  AND ($3::text IS NULL OR j.tenant = $3)
