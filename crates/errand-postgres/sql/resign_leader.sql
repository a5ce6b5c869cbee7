-- Gives up leader role $1 if owner $2 holds it. Locks: the role's row.
DELETE FROM __SCHEMA__.leaders WHERE role = $1 AND owner = $2
