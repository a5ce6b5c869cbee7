-- The queues holding at least one available job: one probe of the fetch
-- index (partial on available, led by the queue) per known queue, so it
-- costs the same with ten jobs or ten million.
SELECT q.name FROM __SCHEMA__.queues AS q
WHERE EXISTS (SELECT 1 FROM __SCHEMA__.jobs AS j WHERE j.queue = q.name AND j.state = 'available')
ORDER BY q.name
