-- The compare-and-set of the cursors of a batch of ticks (each schedule at
-- most once): schedule $1[i] moves from $3[i] (what the scheduler read;
-- NULL for @reboot) to $4[i], if its definition $2[i] is current. $5 now.
-- Returns, per tick in input order: whether it advanced, the last run's job
-- if it is unfinished (for the overlap check), and the stored definition
-- and cursor (why a refused tick was refused). The main SELECT reads the
-- rows as they were before the UPDATE: only refused ticks read them, and
-- those rows were not changed.
WITH t AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
         WITH ORDINALITY AS t(name, fingerprint, expected, next_fire, ord)
),
advanced AS (
    UPDATE __SCHEMA__.schedules s
    SET next_fire = t.next_fire, updated_at = $5
    FROM t
    WHERE s.name = t.name AND s.fingerprint = t.fingerprint AND s.enabled
      AND s.removed_at IS NULL AND s.next_fire IS NOT DISTINCT FROM t.expected
    RETURNING t.ord, s.last_job_id
)
SELECT t.ord, a.ord IS NOT NULL AS advanced, r.id AS running,
       s.fingerprint, s.enabled, s.removed_at, s.next_fire
FROM t
LEFT JOIN advanced a ON a.ord = t.ord
LEFT JOIN __SCHEMA__.jobs r
       ON r.id = a.last_job_id AND r.state IN ('scheduled', 'available', 'running', 'retryable')
LEFT JOIN __SCHEMA__.schedules s ON s.name = t.name
ORDER BY t.ord
