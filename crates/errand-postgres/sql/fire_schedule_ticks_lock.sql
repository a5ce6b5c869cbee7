-- Locks the schedules $1 of a batch of ticks, in name order, before
-- anything else: two schedulers firing overlapping batches (in any order)
-- then queue on the first schedule they share instead of deadlocking. A
-- racing scheduler waits here until the first commits, then its
-- compare-and-set sees the moved cursors and writes nothing.
SELECT name FROM __SCHEMA__.schedules
WHERE name = ANY($1::text[])
ORDER BY name
FOR UPDATE
