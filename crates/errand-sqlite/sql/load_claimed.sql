-- The rows of jobs just claimed (a JSON array of ids), read on a read
-- connection after the claim committed. Primary-key lookups. The caller sorts.
SELECT * FROM jobs WHERE id IN (SELECT value FROM json_each(?1))
