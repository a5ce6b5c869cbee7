-- A page of jobs, newest first, below cursor $6. Each NULL filter matches
-- everything: $1 scope tenant, $2 tenant, $3 queue, $4 kind, $5 states
-- (empty: all). Walks the primary key backwards; $7 is the page size plus
-- one, to tell whether another page follows.
SELECT __JOB__ FROM __SCHEMA__.jobs AS j
WHERE ($1::text IS NULL OR j.tenant = $1)
  AND ($2::text IS NULL OR j.tenant = $2)
  AND ($3::text IS NULL OR j.queue = $3)
  AND ($4::text IS NULL OR j.kind = $4)
  AND (cardinality($5::text[]) = 0 OR j.state = ANY($5))
  AND ($6::int8 IS NULL OR j.id < $6)
ORDER BY j.id DESC
LIMIT $7
