-- DROP COLUMN needs SQLite >= 3.35 (Debian bookworm ships 3.40).
ALTER TABLE notes DROP COLUMN created_at;
