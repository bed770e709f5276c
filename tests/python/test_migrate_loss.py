"""migrate.py loss --to N: what a rollback's down migrations would drop, measured on a copy (the
database is only read): tables with their rows, columns with their values that differ from the
default, rows deleted; per down migration, newest first. A rollback asks before it loses data."""
import json
import sqlite3

from helpers import query, run_migrate


def execute(db, sql):
    with sqlite3.connect(db) as c:
        c.execute(sql)


def write(mdir, name, sql):
    mdir.mkdir(exist_ok=True)
    (mdir / name).write_text(sql)


def setup(tmp_path):
    mdir, db = tmp_path / "m", tmp_path / "db" / "app.sqlite3"
    db.parent.mkdir()
    write(mdir, "0001_notes.up.sql", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
    write(mdir, "0001_notes.down.sql", "DROP TABLE notes;")
    write(mdir, "0002_pinned.up.sql", "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;")
    write(mdir, "0002_pinned.down.sql", "ALTER TABLE notes DROP COLUMN pinned;")
    write(mdir, "0003_tags.up.sql", "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);")
    write(mdir, "0003_tags.down.sql", "DROP TABLE tags;")
    assert run_migrate("up", db=db, dir=mdir).returncode == 0
    return mdir, db


def loss(db, mdir, to):
    r = run_migrate("loss", "--to", str(to), db=db, dir=mdir)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_down_that_drops_data_names_the_table_column_and_rows(tmp_path):
    mdir, db = setup(tmp_path)
    execute(db, "INSERT INTO notes (body, pinned) VALUES ('a', 1), ('b', 0), ('c', 0)")
    execute(db, "INSERT INTO tags (name) VALUES ('x'), ('y')")
    before = query(db, "SELECT * FROM notes")
    r = loss(db, mdir, 1)
    assert r["from"] == 3 and r["to"] == 1
    assert r["downs"] == [
        {"version": 3, "name": "tags", "lost": [{"table": "tags", "rows": 2}]},
        {"version": 2, "name": "pinned", "lost": [{"table": "notes", "column": "pinned", "values": 3, "nonDefault": 1}]},
    ]
    # only read: the database keeps its schema and rows, and the copy is gone
    assert query(db, "SELECT MAX(version) FROM schema_migrations") == [(3,)]
    assert query(db, "SELECT * FROM notes") == before
    assert [p.name for p in (db.parent / "backups").iterdir()] == []


def test_a_column_that_holds_only_its_default_loses_nothing(tmp_path):
    mdir, db = setup(tmp_path)
    execute(db, "INSERT INTO notes (body) VALUES ('a')")
    r = loss(db, mdir, 1)
    assert r["downs"][1]["lost"] == [{"table": "notes", "column": "pinned", "values": 1, "nonDefault": 0}]
    assert r["downs"][0]["lost"] == [{"table": "tags", "rows": 0}]


def test_nothing_to_revert_and_no_database(tmp_path):
    mdir, db = setup(tmp_path)
    assert loss(db, mdir, 3)["downs"] == []
    missing = tmp_path / "db" / "none.sqlite3"
    assert loss(missing, mdir, 0) == {"to": 0, "downs": []}
    assert not missing.exists()
