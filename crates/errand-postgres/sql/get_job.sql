-- One job by primary key, if the scope ($2: a tenant, or NULL for all) allows.
SELECT __JOB__ FROM __SCHEMA__.jobs AS j
WHERE j.id = $1 AND ($2::text IS NULL OR j.tenant = $2)
