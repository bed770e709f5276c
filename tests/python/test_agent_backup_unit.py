"""The backup's work as the app user (fdeploy_agent/backup_unit.py) without a server: the fence loop
on a fake clock, the drill, the restore's fetch and swap, the first database."""
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
from fdeploy_agent import backup_unit as bu
from fdeploy_agent.cli import main
from fdeploy_agent.host import Host
from helpers import app_root
from test_agent_backup import KINDS, NEW, Replica, params, start

DB = "/srv/shop/shared/db/app.sqlite3"


class Clock:
    """Fake time: sleep() advances it; the fence's answers in order (the last one repeats)."""

    def __init__(self, answers, litestream_exits_at=None):
        self.now, self.answers, self.checks, self.exits_at = 0.0, list(answers), [], litestream_exits_at
        self.proc = None

    def sleep(self, s):
        self.now += s

    def fence(self):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.checks.append((self.now, answer))
        return answer

    def start(self):
        self.proc = FakeLitestream(self)
        return self.proc


class FakeLitestream:
    def __init__(self, clock):
        self.clock, self.started_at, self.terminated, self.rc = clock, clock.now, False, None

    def poll(self):
        if self.rc is None and self.clock.exits_at is not None and self.clock.now >= self.clock.exits_at:
            self.rc = 1
        return self.rc

    def terminate(self):
        self.terminated = True
        self.rc = -15

    def wait(self):
        return self.rc


def test_fence_ours_replicates_and_checks_every_interval_until_another_server_owns_it():
    c = Clock(["ours", "ours", "unreachable", "ours", "other"])
    assert bu.fence_loop(c.fence, c.start, c.sleep, 10) == 3
    assert [t for t, _ in c.checks] == [0, 10, 20, 30, 40]
    assert c.proc.started_at == 0 and c.proc.terminated and c.now == 40


def test_fence_another_servers_lease_never_starts_litestream():
    c = Clock(["other"])
    assert bu.fence_loop(c.fence, c.start, c.sleep, 10) == 3
    assert c.proc is None and c.checks == [(0, "other")]


def test_fence_unreachable_target_replicates_anyway():
    c = Clock(["unreachable", "unreachable", "other"])
    assert bu.fence_loop(c.fence, c.start, c.sleep, 5) == 3
    assert c.proc.started_at == 0 and [t for t, _ in c.checks] == [0, 5, 10]


def test_fence_litestream_exiting_by_itself_is_its_status_and_no_more_checks():
    c = Clock(["ours"], litestream_exits_at=25)
    assert bu.fence_loop(c.fence, c.start, c.sleep, 10) == 1
    assert [t for t, _ in c.checks] == [0, 10, 20] and not c.proc.terminated


def test_fence_unit_stopped_stops_litestream_cleanly():
    c = Clock(["ours"])

    def sleep(s):
        c.now += s
        if c.now >= 30:
            raise bu.Stopped()
    assert bu.fence_loop(c.fence, c.start, sleep, 10) == 0
    assert c.proc.terminated


def test_fence_every_from_the_environment(monkeypatch):
    monkeypatch.setenv("FENCE_EVERY", "2")
    assert bu.fence_every() == 2.0
    for bad in ("0", "x", "-1", ""):
        monkeypatch.setenv("FENCE_EVERY", bad)
        assert bu.fence_every() == 10.0


@pytest.mark.parametrize("kind", KINDS)
def test_backup_run_verb_exits_3_on_another_servers_lease(tmp_path, kind, monkeypatch):
    """The unit's ExecStart end to end: the real fence over the fake target; exit status 3, the reason in the journal."""
    root = app_root(tmp_path, "run/fdeploy", "srv/shop/shared/db")
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"")
    start(root, params(kind))
    replica = Replica()
    host = Host(root=str(root), run=replica.run)
    started = []

    class Popen:
        def __init__(self, argv, stdin=None):
            started.append(argv)
            self.rc = None

        def poll(self):
            return self.rc

        def terminate(self):
            self.rc = -15

        def wait(self):
            return self.rc
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        if len(sleeps) == 2:   # another server takes the replica over meanwhile
            replica.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    monkeypatch.setattr(bu.subprocess, "Popen", Popen)
    monkeypatch.setattr(bu.time, "sleep", sleep)
    monkeypatch.setattr(bu.signal, "signal", lambda *a: None)
    monkeypatch.setenv("FENCE_EVERY", "3")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x")   # systemd's, in the unit
    monkeypatch.setenv("FDEPLOY_BACKUP_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("FDEPLOY_BACKUP_SECRET_ACCESS_KEY", "s3cret-value")
    out, err = io.StringIO(), io.StringIO()
    rc = main(["backup-run", "--app", "shop"], stdin=io.StringIO(""), stdout=out, stderr=err, host=host)
    assert rc == 3 and sleeps == [3.0, 3.0]
    assert started == [["/usr/local/lib/fdeploy/litestream-v0.5.2/litestream", "replicate", "-config", "/etc/fdeploy/shop.litestream.yml"]]
    assert "the replica now belongs to server %s (host 10.0.0.7" % NEW in err.getvalue()
    assert "backup.takeover" in json.loads(out.getvalue())["error"]


def make_db(path, rows):
    con = sqlite3.connect(str(path))
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany("INSERT INTO notes (body) VALUES (?)", [("r%d" % i,) for i in range(rows)])
    con.commit()
    con.close()


class Litestream:
    """`litestream restore … -o OUT DB`: OUT from the replica (a file), or a failure."""

    def __init__(self, replica_file, ok=True):
        self.replica_file, self.ok, self.ran = replica_file, ok, []

    def run(self, argv, merge_output=False, input=None):
        self.ran.append(list(argv))
        if argv[1] != "restore":
            return subprocess.CompletedProcess(argv, 0, "", "")
        if not self.ok:
            return subprocess.CompletedProcess(argv, 1, "cannot connect: no route to host\n", "")
        shutil.copy(self.replica_file, self.out(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    def out(self, argv):
        o = argv[argv.index("-o") + 1]
        return o if os.path.isabs(o) and not o.startswith("/srv/") else self.root + o


@pytest.fixture
def unit_host(tmp_path):
    root = app_root(tmp_path, "run/fdeploy", "srv/shop/shared/db")
    start(root, params("sftp"))
    (root / DB.lstrip("/")).unlink()   # the fake restore's
    return root


def run_verb(host, name, **p):
    out, err = io.StringIO(), io.StringIO()
    rc = main([name], stdin=io.StringIO(json.dumps(dict({"APP": "shop"}, **p))), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def test_drill_restores_checks_integrity_and_counts_rows(unit_host, tmp_path):
    make_db(tmp_path / "replica.sqlite3", 5)
    make_db(unit_host / DB.lstrip("/"), 7)
    ls = Litestream(tmp_path / "replica.sqlite3")
    ls.root = str(unit_host)
    rc, res, err = run_verb(Host(root=str(unit_host), run=ls.run), "backup-verify-db", DB=DB)
    assert rc == 0 and res["lines"][1:] == ["integrity_check: ok", "rows notes: replica 5, live 7"]
    assert "rows notes: replica 5, live 7" in err   # the drill unit's journal
    assert ls.ran[0][:4] == ["/usr/local/lib/fdeploy/litestream-v0.5.2/litestream", "restore", "-config", "/etc/fdeploy/shop.litestream.yml"]


def test_drill_fails_on_a_damaged_replica_or_a_target_down(unit_host, tmp_path):
    (tmp_path / "replica.sqlite3").write_bytes(b"SQLite format 3\0" + b"\xff" * 200)
    ls = Litestream(tmp_path / "replica.sqlite3")
    ls.root = str(unit_host)
    rc, res, err = run_verb(Host(root=str(unit_host), run=ls.run), "backup-verify-db", DB=DB)
    assert rc == 1 and "did not pass the restore drill" in res["error"]
    ls.ok = False
    rc, res, err = run_verb(Host(root=str(unit_host), run=ls.run), "backup-verify-db", DB=DB)
    assert rc == 1 and "restore: FAILED\ncannot connect: no route to host" in err


def test_only_the_configured_databases(unit_host):
    rc, res, _ = run_verb(Host(root=str(unit_host), run=Litestream("x").run), "backup-verify-db", DB="/etc/shadow")
    assert rc == 1 and "not one that backup.databases replicates" in res["error"]


def test_restore_fetch_then_swap_keeps_the_old_file_aside(unit_host, tmp_path):
    make_db(tmp_path / "replica.sqlite3", 3)
    live = unit_host / DB.lstrip("/")
    make_db(live, 9)
    (unit_host / "srv/shop/shared/db/app.sqlite3-wal").write_bytes(b"wal")
    (unit_host / "srv/shop/shared/db/.app.sqlite3-litestream").mkdir()
    (unit_host / "srv/shop/shared/db/app.sqlite3.restoring").write_bytes(b"left by a stopped restore")
    ls = Litestream(tmp_path / "replica.sqlite3")
    ls.root = str(unit_host)
    host = Host(root=str(unit_host), run=ls.run)
    rc, res, _ = run_verb(host, "backup-fetch", DB=DB, TIMESTAMP="2026-12-05T07:00:00Z")
    assert rc == 0 and ls.ran[-1][4:6] == ["-timestamp", "2026-12-05T07:00:00Z"]
    rc, res, _ = run_verb(host, "backup-swap", DB=DB, STAMP="20261207T010203Z")
    assert rc == 0
    assert sqlite3.connect(str(live)).execute("SELECT count(*) FROM notes").fetchone()[0] == 3
    assert sqlite3.connect(str(live) + ".before-restore-20261207T010203Z").execute("SELECT count(*) FROM notes").fetchone()[0] == 9
    assert (unit_host / "srv/shop/shared/db/app.sqlite3.before-restore-20261207T010203Z-wal").read_bytes() == b"wal"
    assert not (unit_host / "srv/shop/shared/db/.app.sqlite3-litestream").exists()
    assert live.stat().st_mode & 0o060 == 0o060
    # a second swap has nothing restored to put in place: refused, the database untouched
    rc, res, _ = run_verb(host, "backup-swap", DB=DB, STAMP="20261207T010204Z")
    assert rc == 1 and "run fdeploy backup restore again" in res["error"] and live.exists()


def test_restore_fetch_failure_changes_nothing(unit_host, tmp_path):
    live = unit_host / DB.lstrip("/")
    make_db(live, 2)
    ls = Litestream(tmp_path / "none", ok=False)
    rc, res, err = run_verb(Host(root=str(unit_host), run=ls.run), "backup-fetch", DB=DB)
    assert rc == 1 and "nothing was changed" in res["error"] and "no route to host" in err
    assert sorted(os.listdir(live.parent)) == ["app.sqlite3"]
    rc, res, _ = run_verb(Host(root=str(unit_host), run=ls.run), "backup-fetch", DB=DB, TIMESTAMP="yesterday")
    assert rc == 1 and res["error"].startswith("bad timestamp 'yesterday' (fdeploy backup restore --timestamp")


def test_first_database_created_in_wal_mode_group_writable(unit_host):
    host = Host(root=str(unit_host), run=Litestream("x").run)
    rc, res, _ = run_verb(host, "backup-newdb", DB=DB)
    live = unit_host / DB.lstrip("/")
    assert rc == 0 and res["journal_mode"] == "wal" and live.stat().st_mode & 0o060 == 0o060
    assert run_verb(host, "backup-newdb", DB=DB)[0] == 0   # again: the same
