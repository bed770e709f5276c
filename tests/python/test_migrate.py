"""migrate.py run as a subprocess against real SQLite files in tmp dirs."""
import fcntl
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from helpers import MIGRATE, REAL_MIGRATIONS, copy_real, last_line, query, run_migrate, schema

EXPECTED_FORM = "NNNN_name.up.sql + NNNN_name.down.sql"


def backups(db):
    d = db.parent / "backups"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def columns(db, table="notes"):
    return [r[1] for r in query(db, f"PRAGMA table_info({table})")]


def write(mdir, name, sql):
    mdir.mkdir(exist_ok=True)
    (mdir / name).write_text(sql)


# ---------------------------------------------------------------- check

def test_check_real_migrations():
    p = run_migrate("check", dir=REAL_MIGRATIONS)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [(m["version"], m["name"]) for m in out["migrations"]] == [
        (1, "create_notes"), (2, "add_notes_created_at")]
    up1 = (REAL_MIGRATIONS / "0001_create_notes.up.sql").read_bytes()
    assert out["migrations"][0]["checksum"] == hashlib.sha256(up1).hexdigest()


@pytest.mark.parametrize("files, offender", [
    # gap: 0002 missing
    (["0001_a.up.sql", "0001_a.down.sql", "0003_c.up.sql", "0003_c.down.sql"], "0003_c"),
    # duplicate number with two different names
    (["0001_a.up.sql", "0001_a.down.sql", "0001_b.up.sql", "0001_b.down.sql"], "0001_b"),
    # up without down
    (["0001_a.up.sql", "0001_a.down.sql", "0002_b.up.sql"], "0002_b.up.sql"),
    # bad names
    (["0001_a.up.sql", "0001_a.down.sql", "2_b.up.sql"], "2_b.up.sql"),
    (["0001_a.up.sql", "0001_a.down.sql", "0002_Bad-Name.up.sql"], "0002_Bad-Name.up.sql"),
    (["0001_a.up.sql", "0001_a.down.sql", "notes.sql"], "notes.sql"),
    # numbering must start at 0001
    (["0002_b.up.sql", "0002_b.down.sql"], "0002_b"),
], ids=["gap", "duplicate", "missing-down", "bad-name-digits", "bad-name-chars", "stray-sql", "no-0001"])
def test_check_rejects(mdir, files, offender):
    for f in files:
        write(mdir, f, "SELECT 1;\n")
    write(mdir, "README.md", "not a migration, ignored\n")
    p = run_migrate("check", dir=mdir)
    assert p.returncode == 2
    assert offender in p.stderr
    assert EXPECTED_FORM in p.stderr
    assert p.stdout == ""


def test_check_empty_dir_is_valid(mdir):
    mdir.mkdir()
    p = run_migrate("check", dir=mdir)
    assert p.returncode == 0 and json.loads(p.stdout) == {"migrations": []}


def test_invalid_dir_blocks_up(mdir, db):
    write(mdir, "0002_b.up.sql", "SELECT 1;")
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 2 and not db.exists()


# ---------------------------------------------------------------- up

def test_fresh_db_applies_all(db, mdir):
    copy_real(mdir)
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert last_line(p) == "schema_version=2"
    rows = query(db, "SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations")
    assert [(r[0], r[1]) for r in rows] == [(1, "create_notes"), (2, "add_notes_created_at")]
    for (version, _, checksum, applied_at, duration_ms), f in zip(rows, sorted(f for f in mdir.glob("*.up.sql") if ".postgres." not in f.name)):
        assert checksum == hashlib.sha256(f.read_bytes()).hexdigest()
        assert applied_at.endswith("Z") and duration_ms >= 0
    assert columns(db) == ["id", "body", "created_at"]
    assert stat.S_IMODE(db.stat().st_mode) == 0o660   # the slot users share it (the app group)
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    assert backups(db) == []  # a brand-new DB has nothing to back up


def test_pending_only(db, mdir):
    copy_real(mdir, versions=[1])
    assert last_line(run_migrate("up", db=db, dir=mdir)) == "schema_version=1"
    applied_at_1 = query(db, "SELECT applied_at FROM schema_migrations WHERE version=1")
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO notes (body) VALUES ('before 0002')")
    conn.commit()
    conn.close()

    copy_real(mdir, versions=[2])
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert last_line(p) == "schema_version=2"
    assert "0002_add_notes_created_at.up.sql" in p.stderr
    assert "0001_create_notes.up.sql" not in p.stderr
    assert query(db, "SELECT applied_at FROM schema_migrations WHERE version=1") == applied_at_1
    [b] = backups(db)
    assert b.startswith("app-") and b.endswith("-v1.sqlite3")
    assert stat.S_IMODE((db.parent / "backups").stat().st_mode) == 0o770
    assert stat.S_IMODE((db.parent / "backups" / b).stat().st_mode) == 0o660
    # backfilled
    assert query(db, "SELECT count(*) FROM notes WHERE created_at IS NULL") == [(0,)]


def test_all_applied_is_noop_without_backup(db, mdir):
    copy_real(mdir)
    run_migrate("up", db=db, dir=mdir)
    before = schema(db), query(db, "SELECT * FROM schema_migrations")
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "schema_version=2\n"
    assert backups(db) == []
    assert (schema(db), query(db, "SELECT * FROM schema_migrations")) == before


def test_failing_migration_rolls_back(db, mdir):
    copy_real(mdir, versions=[1])
    run_migrate("up", db=db, dir=mdir)
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [("a",), ("b; c",)])
    conn.commit()
    conn.close()
    # The first statement succeeds, the second fails: both must be undone.
    write(mdir, "0002_add_created_at.up.sql",
          "ALTER TABLE notes ADD COLUMN created_at TEXT;\nINSERT INTO no_such_table VALUES (1);\n")
    write(mdir, "0002_add_created_at.down.sql", "ALTER TABLE notes DROP COLUMN created_at;\n")
    write(mdir, "0003_later.up.sql", "CREATE TABLE later (x);\n")
    write(mdir, "0003_later.down.sql", "DROP TABLE later;\n")
    schema_before = schema(db)
    data_before = query(db, "SELECT * FROM notes ORDER BY id")

    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 1
    assert "0002_add_created_at.up.sql" in p.stderr
    assert "no such table: no_such_table" in p.stderr
    assert "schema_version=" not in p.stdout
    assert schema(db) == schema_before
    assert query(db, "SELECT * FROM notes ORDER BY id") == data_before
    assert query(db, "SELECT version FROM schema_migrations") == [(1,)]  # 0002, 0003 not recorded

    # Fix the migration (it was never applied, so editing it is fine) and re-run.
    write(mdir, "0002_add_created_at.up.sql", "ALTER TABLE notes ADD COLUMN created_at TEXT;\n")
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert last_line(p) == "schema_version=3"


def test_changed_checksum_refused(db, mdir):
    copy_real(mdir)
    run_migrate("up", db=db, dir=mdir)
    up1 = mdir / "0001_create_notes.up.sql"
    up1.write_text(up1.read_text() + "-- edited after release\n")
    write(mdir, "0003_extra.up.sql", "CREATE TABLE extra (x);\n")
    write(mdir, "0003_extra.down.sql", "DROP TABLE extra;\n")
    schema_before = schema(db)
    for args in (["up"], ["down", "--to", "0"], ["status"]):
        p = run_migrate(*args, db=db, dir=mdir)
        assert p.returncode == 3, (args, p.stderr)
        assert "0001_create_notes.up.sql was changed after it was applied" in p.stderr
        assert "add a new migration instead" in p.stderr
    assert schema(db) == schema_before
    assert backups(db) == []


def test_db_newer_than_release_refused(db, mdir):
    copy_real(mdir)
    run_migrate("up", db=db, dir=mdir)
    for f in mdir.glob("0002_*"):
        f.unlink()
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 3
    assert "newer than this release's newest" in p.stderr


def test_concurrent_runner_refused(db, mdir):
    copy_real(mdir)
    with open(f"{db}.migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 75
    assert f"another migration runner is running on {db}" in p.stderr
    assert not db.exists()
    assert run_migrate("up", db=db, dir=mdir).returncode == 0  # lock released


def test_crash_mid_migration_then_rerun(db, mdir):
    copy_real(mdir, versions=[1])
    run_migrate("up", db=db, dir=mdir)
    # A migration that would run for a very long time; we kill -9 the runner in it.
    write(mdir, "0002_big.up.sql",
          "CREATE TABLE big (x INTEGER);\n"
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)\n"
          "INSERT INTO big SELECT x FROM c;\n")
    write(mdir, "0002_big.down.sql", "DROP TABLE big;\n")
    proc = subprocess.Popen([sys.executable, str(MIGRATE), "--db", str(db), "--dir", str(mdir), "up"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "applying 0002_big.up.sql" in line:
                break
        time.sleep(0.5)
        proc.kill()
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -9
    assert query(db, "SELECT version FROM schema_migrations") == [(1,)]
    assert query(db, "SELECT name FROM sqlite_master WHERE name='big'") == []

    write(mdir, "0002_big.up.sql",
          "CREATE TABLE big (x INTEGER);\n"
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10)\n"
          "INSERT INTO big SELECT x FROM c;\n")
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert last_line(p) == "schema_version=2"
    assert query(db, "SELECT count(*) FROM big") == [(10,)]


def test_statement_splitting(db, mdir):
    write(mdir, "0001_tricky.up.sql", """
-- a comment; with a semicolon
CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT); CREATE TABLE log (msg TEXT);
/* block; comment */
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
    INSERT INTO log VALUES ('inserted; ' || new.s);
END;
INSERT INTO t (s) VALUES ('a;b'), ('it''s; fine');
INSERT INTO t (s) VALUES ('no trailing semicolon')
""")
    write(mdir, "0001_tricky.down.sql", "DROP TABLE t; DROP TABLE log;")
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert query(db, "SELECT s FROM t ORDER BY id") == [("a;b",), ("it's; fine",), ("no trailing semicolon",)]
    assert query(db, "SELECT count(*) FROM log") == [(3,)]


def test_transaction_control_in_file_rejected(db, mdir):
    write(mdir, "0001_txn.up.sql", "BEGIN;\nCREATE TABLE x (a);\nCOMMIT;\n")
    write(mdir, "0001_txn.down.sql", "DROP TABLE x;\n")
    p = run_migrate("up", db=db, dir=mdir)
    assert p.returncode == 1
    assert "0001_txn.up.sql" in p.stderr and "transaction" in p.stderr
    assert query(db, "SELECT version FROM schema_migrations") == []


# ---------------------------------------------------------------- down, status, backups

def test_down_to_1(db, mdir):
    copy_real(mdir)
    run_migrate("up", db=db, dir=mdir)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO notes (body, created_at) VALUES ('keep me', '2024-01-01T00:00:00Z')")
    conn.commit()
    conn.close()
    p = run_migrate("down", "--to", "1", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    assert last_line(p) == "schema_version=1"
    assert "0002_add_notes_created_at.down.sql" in p.stderr
    assert columns(db) == ["id", "body"]
    assert query(db, "SELECT id, body FROM notes") == [(1, "keep me")]
    assert query(db, "SELECT version FROM schema_migrations") == [(1,)]
    [b] = backups(db)
    assert b.endswith("-v2.sqlite3")
    assert "created_at" in columns(db.parent / "backups" / b)  # taken before reverting
    # Already at 1: nothing to do, no new backup.
    p = run_migrate("down", "--to", "1", db=db, dir=mdir)
    assert p.returncode == 0 and last_line(p) == "schema_version=1"
    assert len(backups(db)) == 1


def test_status(db, mdir):
    copy_real(mdir, versions=[1])
    p = run_migrate("status", db=db, dir=mdir)
    assert p.returncode == 0 and not db.exists()  # status never creates the DB
    run_migrate("up", db=db, dir=mdir)
    copy_real(mdir, versions=[2])
    p = run_migrate("status", db=db, dir=mdir)
    assert p.returncode == 0, p.stderr
    first, last = p.stdout.strip().splitlines()
    out = json.loads(first)
    assert out["current"] == 1 and last == "schema_version=1"
    assert [m["version"] for m in out["applied"]] == [1]
    assert [m["name"] for m in out["pending"]] == ["add_notes_created_at"]


def test_backup_retention(db, mdir):
    copy_real(mdir, versions=[1])
    run_migrate("up", db=db, dir=mdir)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO notes (body) VALUES ('precious')")
    conn.commit()
    conn.close()
    copy_real(mdir, versions=[2])
    keep = ["--keep", "2"]
    for args in (["up"], ["down", "--to", "1"], ["up"], ["down", "--to", "1"]):
        p = run_migrate(*args, db=db, dir=mdir, extra=keep)
        assert p.returncode == 0, p.stderr
    names = backups(db)
    assert len(names) == 2
    # The two newest: taken before the 2nd "up" (at v1) and the 2nd "down" (at v2).
    assert names[0].endswith("-v1.sqlite3") and names[1].endswith("-v2.sqlite3")
    for name in names:
        path = db.parent / "backups" / name
        assert query(path, "PRAGMA integrity_check") == [("ok",)]
        assert query(path, "SELECT body FROM notes") == [("precious",)]
        assert query(path, "PRAGMA journal_mode") == [("delete",)]


def test_backup_taken_while_app_holds_connection(db, mdir):
    """The online backup sees committed data still in the -wal file."""
    copy_real(mdir, versions=[1])
    run_migrate("up", db=db, dir=mdir)
    app = sqlite3.connect(db)  # stays open, like a running app: no checkpoint on close
    app.execute("PRAGMA wal_autocheckpoint=0")
    app.execute("INSERT INTO notes (body) VALUES ('in the wal')")
    app.commit()
    copy_real(mdir, versions=[2])
    p = run_migrate("up", db=db, dir=mdir)
    app.close()
    assert p.returncode == 0, p.stderr
    [b] = backups(db)
    assert query(db.parent / "backups" / b, "SELECT body FROM notes") == [("in the wal",)]


def test_custom_backup_dir(db, mdir, tmp_path):
    copy_real(mdir, versions=[1])
    run_migrate("up", db=db, dir=mdir)
    copy_real(mdir, versions=[2])
    bdir = tmp_path / "elsewhere" / "bk"
    p = run_migrate("up", db=db, dir=mdir, extra=["--backup-dir", str(bdir)])
    assert p.returncode == 0, p.stderr
    assert len(os.listdir(bdir)) == 1 and backups(db) == []



def test_a_database_it_cannot_open_is_named_with_its_files_owners_and_modes():
    # what an "unable to open database file" hinges on, in the error: here a -shm another user left 0600
    # (the database itself is writable), opened by another user (nobody) as a slot user meets it
    import shutil
    import tempfile
    folder = tempfile.mkdtemp(prefix="fdeploy-migrate-")
    try:
        os.chmod(folder, 0o777)
        db = os.path.join(folder, "app.sqlite3")
        c = sqlite3.connect(db)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE t(x)")
        c.close()
        os.chmod(db, 0o666)
        os.close(os.open(db + "-shm", os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(db + "-shm", 0o600)
        runner = os.path.join(folder, "runner")   # where nobody can read it (this checkout may sit in a private home)
        shutil.copytree(MIGRATE.parent, runner, ignore=shutil.ignore_patterns("agent", "__pycache__"))
        shutil.copytree(REAL_MIGRATIONS, os.path.join(runner, "migrations"))
        os.chmod(runner, 0o755)
        p = subprocess.run(["/usr/bin/python3", "-B", os.path.join(runner, "migrate.py"), "--db", db, "--dir", os.path.join(runner, "migrations"), "up"],
                           capture_output=True, text=True,
                           timeout=60, preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
        assert p.returncode == 1, p.stderr
        assert f"cannot open database {db}: unable to open database file (running as uid 65534, gid 65534;" in p.stderr, p.stderr
        assert "app.sqlite3 0666 0:0, " in p.stderr and "app.sqlite3-shm 0600 0:0)" in p.stderr, p.stderr
    finally:
        shutil.rmtree(folder)
