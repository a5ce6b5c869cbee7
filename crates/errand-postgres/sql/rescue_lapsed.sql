-- Of the jobs $1 (ids, with their lease tokens $2 in the same order), those
-- still running under that token with the lease lapsed before $3. Locks
-- them until the transaction writes their rescue (complete_batch.sql, fenced
-- by the same token), so a heartbeat cannot extend a lease in between and
-- then lose its job. SKIP LOCKED: a job a completer or another rescuer is
-- writing is left to it.
SELECT j.id
FROM __SCHEMA__.jobs AS j
JOIN unnest($1::int8[], $2::int8[]) AS u(id, token) ON j.id = u.id AND j.lease_token = u.token
WHERE j.state = 'running' AND j.lease_expires_at < $3
FOR UPDATE OF j SKIP LOCKED
