-- Jobs per queue and state. This reads the whole table (a sequential or
-- index-only scan): it is for operators and metrics scrapes, not the hot
-- path; pruning keeps it bounded.
SELECT queue, state, count(*)::int8 AS n FROM __SCHEMA__.jobs GROUP BY queue, state
