-- Registers or updates every schedule of the set in one statement ($1 now;
-- $2.. one array element per schedule, names unique). The cursor restarts
-- at the given next fire time when a schedule comes back from removal or
-- its spec or enabled flag changed; otherwise it keeps its progress (missed
-- ticks stay due). SET expressions read the old row (`s`).
INSERT INTO __SCHEMA__.schedules AS s
    (name, spec, fingerprint, enabled, next_fire, registered_at, updated_at)
SELECT t.name, t.spec, t.fingerprint, t.enabled, t.next_fire, $1, $1
FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::int8[])
     AS t(name, spec, fingerprint, enabled, next_fire)
ORDER BY t.name
ON CONFLICT (name) DO UPDATE
SET next_fire = CASE WHEN s.removed_at IS NOT NULL OR s.spec <> excluded.spec
                          OR s.enabled <> excluded.enabled
                     THEN excluded.next_fire ELSE s.next_fire END,
    spec = excluded.spec,
    fingerprint = excluded.fingerprint,
    enabled = excluded.enabled,
    updated_at = excluded.updated_at,
    removed_at = NULL
