-- Records a batch of successful attempts without a result in one
-- statement, fenced as in complete.sql: a row is written only while the job
-- is running under the lease token given with it. ?1 finished_at; ?2 a JSON
-- object mapping each job id to its lease token. (An object and not an array
-- of pairs: json_each then hands over the id and the token with no
-- extraction per row, which cost a third of this statement.)
-- One statement instead of one per job: the per-statement work (binding,
-- starting and finishing the statement) was about a third of a completion.
-- The caller compares the change count with the number of jobs; when some
-- lost their lease it runs the statement again with `RETURNING jobs.id`
-- appended, to learn which were written.
UPDATE jobs
SET state = 'completed',
    finished_at = ?1,
    result = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM json_each(?2) AS c
WHERE jobs.id = CAST(c.key AS INTEGER) AND jobs.state = 'running' AND jobs.lease_token = c.value

