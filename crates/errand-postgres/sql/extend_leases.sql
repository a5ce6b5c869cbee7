-- Heartbeat: extends to $2 the leases that owner $1 still holds among the
-- (id, token) pairs $3/$4. A job missing from the result was lost (rescued,
-- re-claimed or finished). Fenced like complete_batch.
-- Locks: the job rows, by primary key.
UPDATE __SCHEMA__.jobs AS j
SET lease_expires_at = $2
FROM unnest($3::int8[], $4::int8[]) AS h(id, token)
-- Planned as complete_batch.sql is: driven by the input, by primary key,
-- with the running check hidden from the planner's estimates.
WHERE j.id = h.id AND j.lease_token = h.token
  AND CASE j.state WHEN 'running' THEN true ELSE false END AND j.lease_owner = $1
RETURNING j.id, j.cancel_requested
