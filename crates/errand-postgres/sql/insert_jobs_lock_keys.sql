-- Serialises inserts that share a unique key, across every process: one
-- transaction-scoped advisory lock per (schema, tenant, key) hash, taken in
-- ascending order (the caller sorts) so two batches cannot deadlock. The lock
-- is held until commit, so the check below and the insert after it are one
-- atomic step for that key; inserts without unique keys never wait on it.
SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k
