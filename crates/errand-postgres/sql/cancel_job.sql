-- An operator's cancel. An unstarted job becomes cancelled now, with a record
-- in its history; a running one is only flagged, and its worker stops it at
-- its next look: the schema's channel is notified in this statement
-- (so the NOTIFY is sent with the commit, even if the caller exits at once).
-- Jobs in other states than __CANCEL_FROM__ (from errand-core's lifecycle)
-- and jobs outside the scope ($2) match nothing: the caller
-- then looks the job up to say why.
-- Locks: the job row, by primary key.
WITH c AS (
UPDATE __SCHEMA__.jobs AS j
SET state = CASE WHEN j.state = 'running' THEN j.state ELSE 'cancelled' END,
    finished_at = CASE WHEN j.state = 'running' THEN j.finished_at ELSE $3 END,
    cancel_requested = j.cancel_requested OR j.state = 'running',
    errors = CASE WHEN j.state = 'running' THEN j.errors
                  ELSE j.errors || jsonb_build_array(jsonb_build_object(
                      'attempt', j.attempt, 'at', $4::text, 'message', 'cancelled by an operator'))
             END
WHERE j.id = $1 AND ($2::text IS NULL OR j.tenant = $2)
  AND j.state IN (__CANCEL_FROM__)
RETURNING __JOB__
),
notified AS (
    SELECT pg_notify(__CHANNEL__, c.queue) FROM c WHERE c.state = 'running'
)
-- The count forces the notify CTE to run (an unreferenced SELECT CTE never does).
SELECT c.* FROM c
WHERE (SELECT count(*) FROM notified) >= 0
