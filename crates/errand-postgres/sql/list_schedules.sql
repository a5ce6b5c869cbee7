-- Every schedule with the current state of its last run's job (NULL when
-- pruned). Primary key lookups into jobs.
SELECT s.name, s.spec, s.fingerprint, s.enabled, s.removed_at, s.next_fire, s.last_fire,
       s.last_job_id, s.last_outcome, j.state AS job_state
FROM __SCHEMA__.schedules s
LEFT JOIN __SCHEMA__.jobs j ON j.id = s.last_job_id
ORDER BY s.name COLLATE "C"
