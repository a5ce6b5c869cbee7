-- Records the tick; the primary key (schedule, fire time) makes a second
-- firing of one tick impossible whatever the cursor says.
INSERT INTO __SCHEMA__.schedule_ticks (schedule, fire_at, fired_at)
VALUES ($1, $2, $3)
ON CONFLICT (schedule, fire_at) DO NOTHING
RETURNING fire_at
