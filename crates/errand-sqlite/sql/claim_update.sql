-- Marks the jobs claim_select.sql picked (?1, a JSON array of ids) as running
-- under a new lease: ?2 now, ?3 the owner, ?4 the lease deadline. The join
-- is driven by the array, one primary-key lookup per id. The rows are read
-- after the commit, on a read connection (load_claimed.sql): materialising
-- whole rows here cost about half the claim's time on the writer thread,
-- which bounds throughput.
UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    attempted_at = ?2,
    lease_owner = ?3,
    lease_token = lease_token + 1,
    lease_expires_at = ?4
FROM json_each(?1) AS c
WHERE jobs.id = c.value AND jobs.state = 'available'
