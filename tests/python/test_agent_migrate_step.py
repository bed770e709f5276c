"""migrate (migrate_step.py): the uploaded set copied once, migrate.py run for real as the new
release's slot user (umask 0007), migrations/current moved only after success; a rollback's down."""
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, migrate_step  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

SET = "0123456789ab"
HISTORY = '{"time": "2026-01-01T00:00:00Z", "release": "%s", "status": "live", "strategy": "restart", "schema": 1}\n'


class Fake:
    """runuser … python3 migrate.py …: run for real (server paths under the test root), recording
    the user and umask; FAIL: its exit status instead."""
    def __init__(self, root, fail=None):
        self.root, self.fail, self.calls, self.umasks = root, fail, [], []

    def run(self, argv, merge_output=False, input=None, umask=None):
        self.calls.append(list(argv))
        if argv[0] == "runuser":
            self.umasks.append(umask)
            if self.fail is not None:
                return subprocess.CompletedProcess(argv, self.fail, "", "migrate: 0002_bad.up.sql failed: near \"NOPE\": syntax error\n")
            real = [self.local(a) if a.startswith("/srv/") else a for a in argv[argv.index("python3") + 1:]]
            return subprocess.run([sys.executable] + real, capture_output=True, text=True)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def local(self, path):
        p = str(self.root) + path
        return str(self.root) + os.readlink(p) if os.path.islink(p) else p   # migrations/current: a server path

    def host(self):
        return Host(root=str(self.root), run=self.run, user_ids=lambda n: (2001, 2001), which=lambda c: None,
                    kill_user=lambda uid, gid: None)


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = app_root(tmp_path / "server", "srv/shop/shared/db", "srv/shop/shared/backups", "srv/shop/slots", "run")
    home = tmp_path / "home"
    monkeypatch.setattr(migrate_step, "bundle_home", lambda: str(home))
    up(home, "0001_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY);", "DROP TABLE notes;")
    return r


def up(home, name, sql, down, folder="migrations-" + SET):
    d = home / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / (name + ".up.sql")).write_text(sql)
    (d / (name + ".down.sql")).write_text(down)


def verb(fake, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["migrate"], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host())
    return rc, json.loads(out.getvalue()), err.getvalue()


def tables(root):
    c = sqlite3.connect(str(root / "srv/shop/shared/db/app.sqlite3"))
    try:
        return sorted(r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        c.close()


def test_up_copies_the_set_runs_migrate_as_the_slot_user_and_moves_current(root):
    fake = Fake(root)
    rc, out, err = verb(fake, {"APP": "shop", "MIGRATIONS": "migrations-" + SET, "KEEP_BACKUPS": 3})
    assert rc == 0, err
    assert out["mode"] == "up" and out["schema_version"] == 1 and "notes" in tables(root)
    m = root / "srv/shop/migrations"
    assert os.readlink(str(m / "current")) == "/srv/shop/migrations/" + SET and (m / SET / "0001_notes.up.sql").is_file()
    assert (m / "migrate.py").is_file() and (m / "backup_budget.py").is_file() and not (m / (SET + ".tmp")).exists()
    argv = next(c for c in fake.calls if c[0] == "runuser")
    assert argv[:4] == ["runuser", "-u", "shop_1", "--"] and fake.umasks == [0o007]
    assert argv[-1] == "up" and "--keep" in argv and argv[argv.index("--keep") + 1] == "3"


def test_a_failed_migration_leaves_the_previous_set_current(root, tmp_path):
    assert verb(Fake(root), {"APP": "shop", "MIGRATIONS": "migrations-" + SET, "KEEP_BACKUPS": 3})[0] == 0
    up(tmp_path / "home", "0001_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY);", "DROP TABLE notes;", "migrations-bbbbbbbbbbbb")
    rc, out, err = verb(Fake(root, fail=1), {"APP": "shop", "MIGRATIONS": "migrations-bbbbbbbbbbbb", "KEEP_BACKUPS": 3})
    assert rc == 1 and out["error"].startswith("a migration of flask-deploy:migrationsDir failed (migrate.py up, exit 1)")
    assert "syntax error" in out["error"] and "live release keeps serving" in out["error"] and "syntax error" in err
    assert os.readlink(str(root / "srv/shop/migrations/current")) == "/srv/shop/migrations/" + SET


def test_a_rollback_goes_down_to_the_pinned_release_s_schema(root, tmp_path):
    up(tmp_path / "home", "0002_tags", "CREATE TABLE tags (id INTEGER);", "DROP TABLE tags;")
    assert verb(Fake(root), {"APP": "shop", "MIGRATIONS": "migrations-" + SET, "KEEP_BACKUPS": 3})[1]["schema_version"] == 2
    (root / "srv/shop/history.jsonl").write_text(HISTORY % ("c" * 12))
    fake = Fake(root)
    rc, out, err = verb(fake, {"APP": "shop", "DOWN_TO_SCHEMA_OF": "c" * 12, "KEEP_BACKUPS": 3})
    assert rc == 0 and out == {"mode": "down", "schema_version": 1, "ok": True}, err
    assert tables(root) == ["notes", "schema_migrations"]
    argv = next(c for c in fake.calls if c[0] == "runuser")
    assert argv[argv.index("--dir") + 1] == "/srv/shop/migrations/current" and argv[-3:] == ["down", "--to", "1"]


def test_a_rollback_with_no_set_applied_changes_nothing(root):
    (root / "srv/shop/history.jsonl").write_text(HISTORY % ("c" * 12))
    fake = Fake(root)
    rc, out, _ = verb(fake, {"APP": "shop", "DOWN_TO_SCHEMA_OF": "c" * 12, "KEEP_BACKUPS": 3})
    assert rc == 0 and out["schema_version"] == 0 and fake.calls == []


@pytest.mark.parametrize("p,message", [({"MIGRATIONS": "../x"}, "bad migrations upload"), ({"KEEP_BACKUPS": "x"}, "bad backup count"),
                                       ({"KEEP_BACKUPS_BYTES": "2GB"}, "flask-deploy:keepBackupsBytes")])
def test_bad_parameters_are_refused_before_anything(root, p, message):
    fake = Fake(root)
    rc, out, _ = verb(fake, dict({"APP": "shop", "MIGRATIONS": "migrations-" + SET, "KEEP_BACKUPS": 3}, **p))
    assert rc == 1 and message in out["error"] and fake.calls == [] and not (root / "srv/shop/migrations").exists()
