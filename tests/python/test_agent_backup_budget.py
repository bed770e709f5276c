"""The pre-change backups' disk budget (components/scripts/backup_budget.py) and its two users:
migrate.py (before a schema change) and prerelease_backup.py (before the release commands, as -c).
Decisions first (pure), then on a temporary root with the free space faked."""
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import namedtuple

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import prerelease_backup, release_commands  # noqa: E402
from helpers import query, run_migrate  # noqa: E402

budget = prerelease_backup.load_budget()
K = budget.Kept
MB = 10 ** 6
OLD = [K("app-20260101T000000000000Z-v1.sqlite3", 4 * MB), K("pre-release-20260102T000000Z-" + "a" * 12, 4 * MB),
       K("app-20260103T000000000000Z-v2.sqlite3", 4 * MB)]


def test_within_the_budget_nothing_goes():
    assert budget.plan(OLD, 4 * MB, 100 * MB, 20 * MB, "x", "the schema is unchanged") == ([], 20 * MB, None)


def test_room_for_the_new_copy_is_made_oldest_first():
    names, _, refusal = budget.plan(OLD, 5 * MB, 100 * MB, 14 * MB, "x", "the schema is unchanged")
    assert refusal is None and names == [OLD[0].name]   # 8 + 5 <= 14


def test_what_an_earlier_version_kept_over_the_budget_goes_and_the_deploy_still_runs():
    names, _, refusal = budget.plan(OLD, 1 * MB, 100 * MB, 5 * MB, "x", "the schema is unchanged")
    assert refusal is None and names == [OLD[0].name, OLD[1].name]   # 4 + 1 <= 5


def test_a_copy_over_the_budget_is_refused_with_the_numbers_and_the_fix():
    names, b, refusal = budget.plan(OLD, 12 * MB, 100 * MB, 10 * MB, "the backup of app.sqlite3 before the schema change", "the schema is unchanged")
    assert names == [OLD[0].name] and b == 10 * MB   # over the budget already: pruned all the same
    assert refusal.startswith("the backup of app.sqlite3 before the schema change needs 12.0 MB, which does not fit:")
    for part in ("the budget for kept backups is 10.0 MB (flask-deploy:keepBackupsBytes)", "the disk has 100.0 MB free",
                 "(112.0 MB if every kept backup went)", "; the schema is unchanged: raise",
                 "raise flask-deploy:keepBackupsBytes, free disk space on the server, or lower flask-deploy:keepBackups"):
        assert part in refusal


def test_a_copy_that_would_fill_the_disk_is_refused_whatever_the_budget():
    # 30 MB free + 12 MB kept: a copy of 25 MB would leave less than its size free
    names, _, refusal = budget.plan(OLD, 25 * MB, 30 * MB, 10 ** 12, "x", "the schema is unchanged")
    assert names == [] and "the disk has 30.0 MB free (42.0 MB if every kept backup went)" in refusal
    # 20 MB fits once the kept ones go (42 >= 40), oldest first, only as many as needed
    names, _, refusal = budget.plan(OLD, 20 * MB, 30 * MB, 10 ** 12, "x", "the schema is unchanged")
    assert refusal is None and names == [OLD[0].name, OLD[1].name, OLD[2].name]
    names, _, refusal = budget.plan(OLD, 16 * MB, 30 * MB, 10 ** 12, "x", "the schema is unchanged")
    assert refusal is None and names == [OLD[0].name]


def test_the_default_budget_is_half_the_space_the_backups_could_use():
    _, b, refusal = budget.plan(OLD, 4 * MB, 88 * MB, 0, "x", "the schema is unchanged")
    assert b == 50 * MB and refusal is None
    _, _, refusal = budget.plan([], 60 * MB, 100 * MB, 0, "x", "the schema is unchanged")
    assert "is 50.0 MB (flask-deploy:keepBackupsBytes unset: half of the free space plus the kept backups)" in refusal


def make_kept(d):
    (d / "app-20260103T000000000000Z-v2.sqlite3").write_bytes(b"x" * 300)
    pre = d / ("pre-release-20260102T000000Z-" + "b" * 12) / "db"
    pre.mkdir(parents=True)
    (pre / "app.sqlite3").write_bytes(b"y" * 200)
    (pre / "link.db").symlink_to("/etc/passwd")                        # not counted, never followed
    (d / "app-20260101T000000000000Z-v1.sqlite3").write_bytes(b"z" * 100)
    (d / "app-20260104T000000000000Z-v3.sqlite3").symlink_to("/etc/passwd")   # not one of ours
    (d / "notes.txt").write_text("the app's")
    (d / ".app-20260105T000000000000Z-v3.sqlite3.partial").write_bytes(b"p")


def test_kept_lists_both_kinds_oldest_first_by_their_time(tmp_path):
    make_kept(tmp_path)
    assert budget.kept(str(tmp_path)) == [K("app-20260101T000000000000Z-v1.sqlite3", 100),
                                          K("pre-release-20260102T000000Z-" + "b" * 12, 200),
                                          K("app-20260103T000000000000Z-v2.sqlite3", 300)]
    assert budget.kept(str(tmp_path / "none")) == []


VFS = namedtuple("VFS", "f_bavail f_frsize")


def test_make_room_prunes_with_a_message_then_refuses(tmp_path, monkeypatch):
    make_kept(tmp_path)
    monkeypatch.setattr(os, "statvfs", lambda p: VFS(10 ** 6, 1))
    lines = []
    budget.make_room(str(tmp_path), 250, 550, "x", "y", lines.append)    # 600 kept + 250 > 550: the oldest two go
    assert sorted(os.listdir(str(tmp_path))) == [".app-20260105T000000000000Z-v3.sqlite3.partial", "app-20260103T000000000000Z-v2.sqlite3",
                                                 "app-20260104T000000000000Z-v3.sqlite3", "notes.txt"]
    assert lines[0] == ("backup: removed app-20260101T000000000000Z-v1.sqlite3 (oldest first: the kept backups stay within the budget"
                        " of 550 bytes, flask-deploy:keepBackupsBytes)") and len(lines) == 2
    assert os.path.exists("/etc/passwd")
    with pytest.raises(budget.NoRoom, match="needs 600 bytes, which does not fit"):
        budget.make_room(str(tmp_path), 600, 550, "x", "y", lines.append)
    assert os.listdir(str(tmp_path)).count("app-20260103T000000000000Z-v2.sqlite3") == 1   # 300 <= 550: kept


def big_db(path, mb):
    c = sqlite3.connect(str(path))
    c.execute("CREATE TABLE blob (b)")
    c.executemany("INSERT INTO blob VALUES (randomblob(100000))", [()] * (mb * 10))
    c.commit()
    return c


def test_the_copy_goes_in_steps_with_progress_and_is_whole(tmp_path):
    src = big_db(tmp_path / "a.db", 4)
    dst = sqlite3.connect(str(tmp_path / "b.db"))
    lines = []
    budget.copy(src, dst, "a.db", lines.append, step_bytes=256 * 1024)
    dst.close()
    pct = [line for line in lines if line.startswith("backup: a.db ") and "%" in line]
    assert 8 <= len(pct) <= 10 and pct[0].startswith("backup: a.db 1") and pct[-1].startswith("backup: a.db 9"), lines
    assert pct[-1].endswith(" of 4.0 MB)")
    assert query(tmp_path / "b.db", "SELECT count(*) FROM blob") == [(40,)]
    small = []
    budget.copy(src, sqlite3.connect(str(tmp_path / "c.db")), "a.db", small.append)   # one step: no progress lines
    assert small == []


def test_a_copy_written_to_meanwhile_finishes_in_one_step(tmp_path):
    src = big_db(tmp_path / "a.db", 2)
    writer = sqlite3.connect(str(tmp_path / "a.db"), isolation_level=None)
    dst = sqlite3.connect(str(tmp_path / "b.db"))
    lines = []

    def write(line):
        lines.append(line)
        writer.execute("INSERT INTO blob VALUES (randomblob(10))")   # another connection: the API restarts
    budget.copy(src, dst, "a.db", write, step_bytes=64 * 1024, every=0)
    assert "backup: a.db is written to while it is copied: the rest in one step" in lines
    dst.close()
    assert query(tmp_path / "b.db", "SELECT count(*) FROM blob")[0][0] >= 20


# --- migrate.py: before a schema change ---

def write_migration(mdir, n, name, up, down):
    mdir.mkdir(exist_ok=True)
    (mdir / ("%04d_%s.up.sql" % (n, name))).write_text(up)
    (mdir / ("%04d_%s.down.sql" % (n, name))).write_text(down)


def migrated(db, mdir, rows_mb=2):
    write_migration(mdir, 1, "blob", "CREATE TABLE blob (b);", "DROP TABLE blob;")
    assert run_migrate("up", db=db, dir=mdir).returncode == 0
    c = sqlite3.connect(str(db))
    c.executemany("INSERT INTO blob VALUES (randomblob(100000))", [()] * (rows_mb * 10))
    c.commit()
    c.close()
    write_migration(mdir, 2, "more", "ALTER TABLE blob ADD COLUMN x;", "ALTER TABLE blob DROP COLUMN x;")


def test_migrate_refuses_a_backup_over_the_budget_before_the_schema_changes(db, mdir):
    migrated(db, mdir)
    r = run_migrate("up", db=db, dir=mdir, extra=["--keep-bytes", str(MB)])
    assert r.returncode == 3, r.stderr
    assert "the backup of app.db before the schema change needs 2." in r.stderr and "budget for kept backups is 1.0 MB" in r.stderr
    assert "; the schema, the data and the live release are unchanged: raise flask-deploy:keepBackupsBytes" in r.stderr
    assert query(db, "SELECT max(version) FROM schema_migrations") == [(1,)]
    assert not [n for n in os.listdir(str(db.parent / "backups")) if n.endswith(".sqlite3")]


def test_migrate_prunes_the_oldest_to_the_budget_and_says_how_big_and_how_long(db, mdir):
    migrated(db, mdir)
    bdir = db.parent / "backups"
    bdir.mkdir()
    for day in (1, 2):
        (bdir / ("app-2026010%dT000000000000Z-v1.sqlite3" % day)).write_bytes(b"x" * MB)
    r = run_migrate("up", db=db, dir=mdir, extra=["--keep-bytes", str(4 * MB)])   # 2 MB kept + ~2.1 MB
    assert r.returncode == 0, r.stderr
    assert "backup: removed app-20260101T000000000000Z-v1.sqlite3 (oldest first" in r.stderr
    names = sorted(os.listdir(str(bdir)))
    assert names[0] == "app-20260102T000000000000Z-v1.sqlite3" and len(names) == 2
    assert re.search(r"^backup: app\.db, 2\.\d MB in \d+\.\d s -> %s$" % re.escape("%s/%s" % (bdir, names[1])), r.stderr, re.M), r.stderr
    assert query(db, "SELECT max(version) FROM schema_migrations") == [(2,)]


def test_migrate_with_nothing_pending_still_prunes_what_is_over_the_budget(db, mdir):
    migrated(db, mdir)
    assert run_migrate("up", db=db, dir=mdir).returncode == 0
    bdir = db.parent / "backups"
    before = sorted(os.listdir(str(bdir)))
    (bdir / "app-20250101T000000000000Z-v1.sqlite3").write_bytes(b"x" * MB)
    r = run_migrate("up", db=db, dir=mdir, extra=["--keep-bytes", str(3 * MB)])
    assert r.returncode == 0 and "removed app-20250101T000000000000Z-v1.sqlite3" in r.stderr
    assert sorted(os.listdir(str(bdir))) == before


# --- the pre-release backup (-c, as the slot user) ---

def test_the_prerelease_backup_refuses_with_the_numbers_and_copies_nothing(tmp_path):
    shared = tmp_path / "shared"
    (shared / "db").mkdir(parents=True)
    big_db(shared / "db/app.sqlite3", 2).close()
    dest = shared / "backups/pre-release-20260101T000000Z-" / ("a" * 12)
    argv = release_commands.backup_argv("u", str(shared), str(dest), 5, MB)
    r = subprocess.run([sys.executable] + argv[argv.index("python3") + 1:], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 3 and "the backup of 1 database(s) in shared/ before the release commands needs 2." in r.stderr
    assert "; no release command ran, the live release keeps serving: raise flask-deploy:keepBackupsBytes" in r.stderr
    assert "flask-deploy:keepBackupsBytes" in r.stderr and not dest.exists()
    argv = release_commands.backup_argv("u", str(shared), str(dest), 5, 10 * MB)
    r = subprocess.run([sys.executable] + argv[argv.index("python3") + 1:], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["saved"] == 1 and json.loads(r.stdout)["bytes"] > 2 * MB
    assert query(dest / "db/app.sqlite3", "SELECT count(*) FROM blob") == [(20,)]


def test_the_agent_imports_without_the_bundle_beside_it(tmp_path):
    """backup.sh installs a copy of the agent alone (/usr/local/lib/fdeploy/backup-agent): its verbs load."""
    import shutil
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"), str(tmp_path / "agent"))
    r = subprocess.run([sys.executable, "-I", "-B", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import fdeploy_agent.cli",
                        str(tmp_path / "agent")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("raw", ["2GB", "-1", "1e9", True, "1" * 17])
def test_a_bad_budget_parameter_is_refused(raw):
    with pytest.raises(Exception, match=r"flask-deploy:keepBackupsBytes: a size like 2GB"):
        release_commands.check_keep_bytes(raw)
