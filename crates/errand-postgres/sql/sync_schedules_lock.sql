-- Serialises syncs of one schema's schedules (schedulers starting together):
-- a transaction-scoped advisory lock, so the upsert and the removal below
-- never interleave with another sync's and cannot deadlock on row locks.
SELECT pg_advisory_xact_lock($1)
