-- Records the ticks ($1[i], $2[i]) at $3 (each schedule at most once); the
-- primary key (schedule, fire time) makes a second firing of one tick
-- impossible whatever the cursor says. Returns the schedules recorded.
INSERT INTO __SCHEMA__.schedule_ticks (schedule, fire_at, fired_at)
SELECT t.schedule, t.fire_at, $3
FROM unnest($1::text[], $2::int8[]) AS t(schedule, fire_at)
ON CONFLICT (schedule, fire_at) DO NOTHING
RETURNING schedule
