-- Stores a running job's progress if the caller's lease still holds.
-- Locks: the job row, by primary key.
UPDATE __SCHEMA__.jobs
SET progress = $3::json
WHERE id = $1 AND state = 'running' AND lease_token = $2
