-- The rows of jobs just claimed (a JSON array of ids), read on a read
-- connection after the claim committed. Driven by the array, one primary-key
-- lookup per id; `id IN (SELECT …)` would first copy the ids into an
-- ephemeral index. The caller sorts.
SELECT j.* FROM json_each(?1) AS c CROSS JOIN jobs AS j ON j.id = c.value
