-- The compare-and-set of a schedule's cursor: from $3 (what the scheduler
-- read; NULL for @reboot) to $4, if the definition ($2) is current. A racing
-- scheduler blocks on the row lock, then re-checks the WHERE against the
-- committed row (READ COMMITTED), finds the cursor moved and updates nothing.
-- Returns the last run's job, for the overlap check.
UPDATE __SCHEMA__.schedules
SET next_fire = $4, updated_at = $5
WHERE name = $1 AND fingerprint = $2 AND enabled AND removed_at IS NULL
  AND next_fire IS NOT DISTINCT FROM $3
RETURNING last_job_id
