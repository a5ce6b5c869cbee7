-- Takes or renews leader role $1 for owner $2 until $4. The upsert succeeds
-- when nobody holds the role, when $2 already holds it (a renewal), or when
-- the holder's lease ran out before $3 (a takeover); otherwise it changes
-- nothing and returns no row. Locks: the role's row, for this statement.
INSERT INTO __SCHEMA__.leaders AS l (role, owner, elected_at, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (role) DO UPDATE
SET owner = excluded.owner,
    expires_at = excluded.expires_at,
    elected_at = CASE WHEN l.owner = excluded.owner THEN l.elected_at ELSE excluded.elected_at END
WHERE l.owner = excluded.owner OR l.expires_at <= excluded.elected_at
RETURNING l.owner
