-- PostgreSQL's version of 0002_add_notes_created_at.up.sql: the same text column (the app writes
-- ISO 8601 UTC), existing rows backfilled with the migration time.
ALTER TABLE notes ADD COLUMN created_at text;
UPDATE notes SET created_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') WHERE created_at IS NULL;
