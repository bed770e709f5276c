"""backup.beforeChange: replica (replica_undo.py, replica_point.py): the replica's restore point is
the undo only when replication runs, the lease is ours and the replica reaches the database's
position within the bound; otherwise the local copy, with the reason. Through the migrate verb with
migrate.py run for real."""
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, migrate_step, replica_point, replica_undo  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

SET = "0123456789ab"
LTX = [{"min_txid": "0000000000000001", "max_txid": "0000000000000005", "timestamp": "2026-12-07T06:00:00Z"},
       {"min_txid": "0000000000000006", "max_txid": "0000000000000009", "timestamp": "2026-12-07T06:00:05Z"},
       {"min_txid": "0000000000000001", "max_txid": "0000000000000009", "timestamp": "2026-12-07T06:00:06Z"}]


def status(txid):
    return json.dumps([{"path": "/srv/shop/shared/db/app.sqlite3", "status": "ok", "local_txid": txid}])


def test_the_covering_file_is_the_first_that_reaches_the_position():
    assert replica_point.covering(json.dumps(LTX), 7) == {"txid": "0000000000000007", "time": "2026-12-07T06:00:05Z"}
    assert replica_point.covering(json.dumps(LTX), 5)["time"] == "2026-12-07T06:00:00Z"
    assert replica_point.covering(json.dumps(LTX), 10) is None
    assert replica_point.covering("[]", 1) is None and replica_point.covering("not json", 1) is None
    # a replica beyond this database's own position holds another server's history: no point in it
    assert replica_point.covering(json.dumps(LTX), 7, local_now=8) is None
    assert replica_point.covering(json.dumps(LTX), 7, local_now=9)["txid"] == "0000000000000007"
    assert replica_point.local_txid(status("000000000000000a")) == 10 and replica_point.local_txid("") is None


class Clock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, s):
        self.now += s


def test_the_point_waits_for_the_replica_to_catch_up_within_the_bound():
    clock = Clock()
    answers = iter([json.dumps(LTX[:1])] * 3 + [json.dumps(LTX)])
    local = iter(["0000000000000007"] + ["0000000000000009"] * 9)   # the app writes on meanwhile
    p = replica_point.wait_for_point(lambda: status(next(local)), lambda: (True, next(answers)), 30, lambda: clock.now, clock.sleep)
    assert p["txid"] == "0000000000000007" and p["time"] == "2026-12-07T06:00:05Z" and p["waited"] == 3.0


def test_a_replica_that_does_not_catch_up_gives_no_point():
    clock = Clock()
    p = replica_point.wait_for_point(lambda: status("0000000000000010"), lambda: (True, json.dumps(LTX)), 5, lambda: clock.now, clock.sleep)
    assert p == {"why": "the replica did not reach the database's position 0000000000000010 within 5 s"} and clock.now <= 6
    # another server's history (its replica ahead of this database) never passes for a point here
    p = replica_point.wait_for_point(lambda: status("0000000000000003"), lambda: (True, json.dumps(LTX)), 5, lambda: clock.now, clock.sleep)
    assert "within 5 s" in p["why"]
    p = replica_point.wait_for_point(lambda: "", lambda: (True, "[]"), 5, lambda: clock.now, clock.sleep)
    assert "no local position" in p["why"]
    p = replica_point.wait_for_point(lambda: status("01"), lambda: (False, "dial tcp: connection refused"), 5, lambda: clock.now, clock.sleep)
    assert p["why"] == "the replica cannot be read (dial tcp: connection refused)"


POINT = {"txid": "0000000000000007", "time": "2026-12-07T06:00:05Z", "waited": 1.6}


@pytest.mark.parametrize("configured,active,probe,use,why", [
    (True, "active", POINT, "replica", None),
    (False, "none", None, "copy", "no offsite backup is configured"),
    (True, "failed", None, "copy", "replication is not running (its unit is failed)"),
    (True, "active", {"why": "the replica's lease is not this server's (other)"}, "copy", "lease is not this server's"),
    (True, "active", None, "copy", "could not be read"),
])
def test_the_decision(configured, active, probe, use, why):
    d = replica_undo.decide(configured, active, probe)
    assert d["use"] == use and (why is None or why in d["why"])


class Fake:
    """migrate.py for real (runuser … python3 …); systemctl is-active: ACTIVE; the backup-point probe
    (systemd-run … backup-point): POINT as its JSON result."""
    def __init__(self, root, active="active", point=None):
        self.root, self.active, self.point, self.calls = root, active, point, []

    def run(self, argv, merge_output=False, input=None, umask=None):
        self.calls.append(list(argv))
        if argv[0] == "runuser":
            real = [str(self.root) + a if a.startswith("/srv/") else a for a in argv[argv.index("python3") + 1:]]
            return subprocess.run([sys.executable] + real, capture_output=True, text=True)
        if argv[:2] == ["systemctl", "is-active"]:
            return subprocess.CompletedProcess(argv, 0, self.active + "\n", "")
        if argv[0] == "systemd-run" and "backup-point" in argv:
            return subprocess.CompletedProcess(argv, 0, json.dumps(dict(self.point or {}, ok=True)) + "\n", "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def host(self):
        return Host(root=str(self.root), run=self.run, user_ids=lambda n: (2001, 2001), which=lambda c: None,
                    kill_user=lambda uid, gid: None)


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = app_root(tmp_path / "server", "srv/shop/shared/db", "srv/shop/shared/backups", "srv/shop/slots", "run", "etc/fdeploy/shop")
    (r / "etc/fdeploy/shop.backup.conf").write_text("ME=%s\nKIND=sftp\nR_HOST=backup.example\nR_PATH=/srv/r\n"
                                                    "LITESTREAM=/usr/local/lib/fdeploy/litestream-v0.5.18/litestream\nCONFIG=/etc/fdeploy/shop.litestream.yml\n" % ("a" * 32))
    home = tmp_path / "home"
    monkeypatch.setattr(migrate_step, "bundle_home", lambda: str(home))
    for name, sql, down in (("0001_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);", "DROP TABLE notes;"),
                            ("0002_drop", "DROP TABLE notes;", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")):
        for folder in (["migrations-" + SET] if name == "0001_notes" else []) + ["migrations-bbbbbbbbbbbb"]:
            d = home / folder
            d.mkdir(parents=True, exist_ok=True)
            (d / (name + ".up.sql")).write_text(sql)
            (d / (name + ".down.sql")).write_text(down)
    return r


def verb(fake, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["migrate"], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host())
    return rc, json.loads(out.getvalue()), err.getvalue()


def first_and_destructive(root, fake, **extra):
    assert verb(Fake(root), {"APP": "shop", "MIGRATIONS": "migrations-" + SET, "KEEP_BACKUPS": 3})[0] == 0
    for p in (root / "srv/shop/shared/backups").iterdir():
        p.unlink()
    rc, out, err = verb(fake, dict({"APP": "shop", "MIGRATIONS": "migrations-bbbbbbbbbbbb", "KEEP_BACKUPS": 3}, **extra))
    assert rc == 0 and out["schema_version"] == 2, err
    return err, sorted(p.name for p in (root / "srv/shop/shared/backups").iterdir())


def test_a_healthy_caught_up_replica_is_the_undo_and_no_copy_is_taken(root):
    fake = Fake(root, point=POINT)
    err, backups = first_and_destructive(root, fake, BEFORE_CHANGE="replica")
    assert backups == []
    assert "undo: the replica's restore point (backup.beforeChange: replica; replication healthy, caught up in 1.6 s): txid 0000000000000007" in err
    assert "fdeploy backup restore --stack <stack> --txid 0000000000000007" in err
    rec = root / "etc/fdeploy/shop/undo-points.jsonl"
    assert oct(rec.stat().st_mode & 0o777) == "0o600"
    entry = json.loads(rec.read_text().splitlines()[-1])
    assert entry["txid"] == "0000000000000007" and entry["replica_time"] == POINT["time"] and entry["owner"] == "a" * 32
    assert entry["replica"] == "sftp://backup.example/srv/r" and entry["db"] == "/srv/shop/shared/db/app.sqlite3"
    assert next(c for c in fake.calls if c[0] == "runuser" and "migrate.py" in " ".join(c))[-2:] == ["up", "--no-copy"]


@pytest.mark.parametrize("active,point,why", [
    ("inactive", POINT, "replication is not running (its unit is inactive)"),
    ("active", {"why": "the replica did not reach the database's position 0000000000000009 within 30 s"}, "within 30 s"),
])
def test_an_unhealthy_or_late_replica_falls_back_to_the_local_copy(root, active, point, why):
    err, backups = first_and_destructive(root, Fake(root, active=active, point=point), BEFORE_CHANGE="replica")
    assert len(backups) == 1 and backups[0].startswith("app-") and backups[0].endswith("-v1.sqlite3")
    assert "undo: a local copy (backup.beforeChange: replica falls back): " in err and why in err
    assert not (root / "etc/fdeploy/shop/undo-points.jsonl").exists()


def test_copy_the_default_never_asks_the_replica(root):
    fake = Fake(root, point=POINT)
    err, backups = first_and_destructive(root, fake)
    assert len(backups) == 1 and "undo:" not in err
    assert not any(c[0] in ("systemd-run", "systemctl") for c in fake.calls)


def test_no_offsite_backup_on_the_server_falls_back(root):
    os.unlink(str(root / "etc/fdeploy/shop.backup.conf"))
    err, backups = first_and_destructive(root, Fake(root, point=POINT), BEFORE_CHANGE="replica")
    assert len(backups) == 1 and "no offsite backup is configured on this server" in err


class ReleaseFake(Fake):
    """release-commands-prepare: the backup program for real (runuser … python3 -c …), slot users free."""
    def run(self, argv, merge_output=False, input=None, umask=None):
        if argv[:2] == ["systemctl", "show"]:
            return subprocess.CompletedProcess(argv, 0, "0\n", "")
        return super().run(argv, merge_output, input, umask)

    def host(self):
        return Host(root=str(self.root), run=self.run, user_ids=lambda n: (0 if n == "shop" else 2001, 0), which=lambda c: None,
                    kill_user=lambda uid, gid: None)


def sqlite_file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    c = sqlite3.connect(str(path))
    c.execute("CREATE TABLE IF NOT EXISTS t (x)")
    c.execute("INSERT INTO t VALUES (1)")
    c.commit()
    c.close()


def prepare(root, fake, **extra):
    rid = "a" * 12
    (root / "srv/shop/releases" / rid).mkdir(parents=True, exist_ok=True)
    (root / "srv/shop/releases" / rid / ".fdeploy-release.json").write_text("{}\n")
    (root / "etc/fdeploy/shop.litestream.yml").write_text('dbs:\n  - path: "/srv/shop/shared/db/app.sqlite3"\n')
    sqlite_file(root / "srv/shop/shared/db/app.sqlite3")
    sqlite_file(root / "srv/shop/shared/instance/extra.sqlite3")   # not replicated: always copied
    out, err = io.StringIO(), io.StringIO()
    params = dict({"APP": "shop", "RELEASE_ID": rid, "COMMANDS": json.dumps(["true"]), "KEEP_BACKUPS": 2}, **extra)
    rc = cli.main(["release-commands-prepare"], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host())
    assert rc == 0, err.getvalue()
    result = json.loads(out.getvalue())
    copied = sorted(str(p.relative_to(root / "srv/shop/shared/backups")).split("/", 1)[1]
                    for p in (root / "srv/shop/shared/backups").glob("pre-release-*/**/*.sqlite3"))
    return result, err.getvalue(), copied


def test_before_the_release_commands_the_replicated_databases_use_their_points_the_others_are_copied(root):
    result, err, copied = prepare(root, ReleaseFake(root, point=POINT), BEFORE_CHANGE="replica")
    assert copied == ["instance/extra.sqlite3"] and result["saved"] == 1
    assert "undo: the replica's restore point" in err and "no local copy of app.sqlite3" in err
    assert "The replica's restore point of db/app.sqlite3: fdeploy backup restore --txid 0000000000000007." in result["restore"]
    entry = json.loads((root / "etc/fdeploy/shop/undo-points.jsonl").read_text().splitlines()[-1])
    assert entry["reason"] == "before the release commands of " + "a" * 12


def test_before_the_release_commands_a_late_replica_means_every_database_is_copied(root):
    late = {"why": "the replica did not reach the database's position 0000000000000009 within 30 s"}
    result, err, copied = prepare(root, ReleaseFake(root, point=late), BEFORE_CHANGE="replica")
    assert copied == ["db/app.sqlite3", "instance/extra.sqlite3"] and result["saved"] == 2
    assert "undo: a local copy (backup.beforeChange: replica falls back): the replica did not reach" in err
    assert "--txid" not in result["restore"]


def test_before_the_release_commands_copy_is_as_before(root):
    fake = ReleaseFake(root, point=POINT)
    result, err, copied = prepare(root, fake)
    assert copied == ["db/app.sqlite3", "instance/extra.sqlite3"] and "undo:" not in err
    assert not any(c[0] == "systemd-run" for c in fake.calls)
