-- Why a compare-and-set matched nothing: a stale definition, or a tick
-- another scheduler handled.
SELECT fingerprint, enabled, removed_at, next_fire
FROM __SCHEMA__.schedules
WHERE name = $1
