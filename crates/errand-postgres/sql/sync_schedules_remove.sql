-- Marks every schedule left out of the set ($2) removed at $1: it never
-- fires again, and its history stays listed.
UPDATE __SCHEMA__.schedules
SET removed_at = $1, updated_at = $1, next_fire = NULL
WHERE removed_at IS NULL AND NOT (name = ANY($2::text[]))
