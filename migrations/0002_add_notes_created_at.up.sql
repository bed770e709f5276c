-- ALTER TABLE ... ADD COLUMN only accepts constant defaults, so the column is
-- added nullable and existing rows are backfilled with the migration time
-- (the best estimate we have). The app always sets created_at on insert.
ALTER TABLE notes ADD COLUMN created_at TEXT;
UPDATE notes SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE created_at IS NULL;
