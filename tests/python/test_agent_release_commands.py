"""release-commands-prepare (release-commands.sh's decisions): the commands list, the slot user,
the pre-release backup (run as that user, under a time limit; its refusals and pruning), and
migrate-plan (migrate.sh's schema target)."""
import io
import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import cli, prerelease_backup, release_commands  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402
from helpers import app_root  # noqa: E402

RID = "a" * 12


class Fake:
    """Runs the backup for real, without runuser and timeout (the argv after `--`, minus timeout's
    part), unless RC is set; records every command."""
    def __init__(self, rc=None, root=None):
        self.rc, self.calls, self.root = rc, [], root

    def run(self, argv, merge_output=False):
        self.calls.append(list(argv))
        if argv[:2] == ["systemctl", "show"]:
            return subprocess.CompletedProcess(argv, 0, "0\n", "")
        if argv[0] == "runuser":
            if self.rc is not None:
                return subprocess.CompletedProcess(argv, self.rc, "", "Terminated\n")
            real = [str(self.root) + a if self.root and a.startswith("/srv/") else a for a in argv[argv.index("python3") + 1:]]
            return subprocess.run([sys.executable] + real, capture_output=True, text=True)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def host(self, root):
        return Host(root=str(root), run=self.run, user_ids=lambda n: (0 if n == "shop" else 2001, 0),
                    which=lambda c: None, kill_user=lambda uid, gid: None)


def verb(fake, root, name, params):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([name], stdin=io.StringIO(json.dumps(params)), stdout=out, stderr=err, host=fake.host(root))
    return rc, json.loads(out.getvalue()), err.getvalue()


@pytest.fixture
def root(tmp_path):
    r = app_root(tmp_path, "srv/shop/releases/" + RID, "srv/shop/shared/db", "srv/shop/shared/backups", "srv/shop/slots")
    (r / "srv/shop/releases" / RID / ".fdeploy-release.json").write_text("{}\n")
    return r


def db(path, rows=1):
    c = sqlite3.connect(str(path))
    c.execute("CREATE TABLE IF NOT EXISTS t (x)")
    c.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    c.commit()
    c.close()


def params(**kw):
    return dict({"APP": "shop", "RELEASE_ID": RID, "COMMANDS": json.dumps(["flask db upgrade", "echo 'a b'\necho $HOME"]),
                 "KEEP_BACKUPS": 2}, **kw)


def test_prepare_takes_the_other_slot_user_and_backs_up_as_it(root):
    rc, out, err = verb(Fake(root=root), root, "release-commands-prepare", params())
    assert rc == 0, err
    assert out["user"] == "shop_1" and out["commands"] == ["flask db upgrade", "echo 'a b'\necho $HOME"]
    assert out["backup"] == "" and out["saved"] == 0 and "No SQLite database" in out["restore"]
    db(root / "srv/shop/shared/db/app.sqlite3", rows=2)
    rc, out, err = verb(Fake(root=root), root, "release-commands-prepare", params())
    assert out["saved"] == 1 and out["backup"].startswith("/srv/shop/shared/backups/pre-release-")
    assert "A backup taken before the release commands is in %s: to restore it" % out["backup"] in out["restore"]
    assert re.search(r"^backup before the release commands: 1 database\(s\), 8\.2 kB in \d+\.\d s, in %s$" % re.escape(out["backup"]), err, re.M), err
    c = sqlite3.connect(str(root) + out["backup"] + "/db/app.sqlite3")
    assert c.execute("SELECT count(*) FROM t").fetchone() == (2,)
    c.close()
    # the shell lines give bash the same values, whatever the commands hold
    script = "\n".join(out["shell"]) + '\nprintf "%s\\0" "$user" "$restore" "${commands[@]}"'
    got = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split("\0")[:-1]
    assert got == ["shop_1", out["restore"], "flask db upgrade", "echo 'a b'\necho $HOME"]


def test_the_backup_runs_as_the_slot_user_under_a_time_limit_and_never_as_root(root):
    fake = Fake(rc=0)
    verb(fake, root, "release-commands-prepare", params())
    argv = next(c for c in fake.calls if c[0] == "runuser")
    assert argv[:4] == ["runuser", "-u", "shop_1", "--"] and argv[4:8] == ["timeout", "-k", "10", "300"]
    assert argv[8:12] == ["python3", "-I", "-B", "-c"] and argv[-4] == "/srv/shop/shared"
    assert argv[-3].startswith("/srv/shop/shared/backups/pre-release-") and argv[-3].endswith("-" + RID) and argv[-2:] == ["2", "0"]


@pytest.mark.parametrize("rc,message", [(124, "did not finish within 300s"), (137, "did not finish within 300s"),
                                        (1, "could not back up the databases")])
def test_a_backup_that_fails_or_times_out_stops_before_any_command(root, rc, message):
    rc_, out, _ = verb(Fake(rc=rc), root, "release-commands-prepare", params())
    assert rc_ == 1 and message in out["error"] and "no release command ran" in out["error"]


@pytest.mark.parametrize("p,message", [
    ({"COMMANDS": "not json"}, "bad release commands"),
    ({"COMMANDS": json.dumps(["ok", ""])}, "bad release commands"),
    ({"COMMANDS": json.dumps([["x"]])}, "bad release commands"),
    ({"KEEP_BACKUPS": "1000"}, "bad backup count"),
    ({"KEEP_BACKUPS": "-1"}, "bad backup count"),
    ({"RELEASE_ID": "x; rm -rf /"}, "bad release id"),
])
def test_bad_parameters_are_refused_before_anything_runs(root, p, message):
    fake = Fake(rc=0)
    rc, out, _ = verb(fake, root, "release-commands-prepare", params(**p))
    assert rc == 1 and message in out["error"] and fake.calls == []


def test_the_backup_program_runs_standalone_as_minus_c(tmp_path):
    """What the slot user runs: the module's source with -c (it imports nothing of the agent)."""
    shared = tmp_path / "shared"
    (shared / "db").mkdir(parents=True)
    (shared / "backups").mkdir()
    db(shared / "db/app.sqlite3", rows=3)
    (shared / "notes.db").write_text("not sqlite")
    dest = shared / "backups/pre-release-20260101T000000Z-" / RID
    argv = release_commands.backup_argv("u", str(shared), str(dest), 5)
    r = subprocess.run([sys.executable] + argv[argv.index("python3") + 1:], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["saved"] == 1
    c = sqlite3.connect(str(dest / "db/app.sqlite3"))
    assert c.execute("SELECT count(*) FROM t").fetchone() == (3,)
    c.close()


def test_fifos_sockets_and_links_in_shared(tmp_path):
    shared = tmp_path / "shared"
    (shared / "backups").mkdir(parents=True)
    db(shared / "app.db")
    (shared / "evil.db").symlink_to("/etc/shadow")   # a symlink: not backed up
    assert prerelease_backup.backup(str(shared), str(tmp_path / "out"), 3)["saved"] == 1
    os.mkfifo(str(shared / "app.db-wal"))              # SQLite would open it: refused, naming it
    with pytest.raises(prerelease_backup.Refused, match=r"shared/app.db-wal is a FIFO"):
        prerelease_backup.backup(str(shared), str(tmp_path / "out2"), 3)
    os.unlink(str(shared / "app.db-wal"))
    os.mkfifo(str(shared / "x.sqlite"))
    with pytest.raises(prerelease_backup.Refused, match=r"shared/x.sqlite is a FIFO"):
        prerelease_backup.backup(str(shared), str(tmp_path / "out3"), 3)
    assert not (tmp_path / "out3").exists()             # checked first: no partial backup


ALL = ["pre-release-1", "pre-release-2", "pre-release-3", "pre-release-4", "pre-release-5"]


@pytest.mark.parametrize("keep,left", [(2, ALL[3:]), (4, ALL[1:]), (9, ALL), (0, ALL)])
def test_pruning_keeps_the_newest(tmp_path, keep, left):
    b = tmp_path / "backups"
    for n in ("pre-release-1", "pre-release-3", "pre-release-5", "pre-release-2", "pre-release-4", "migrate-x"):
        (b / n).mkdir(parents=True)
    prerelease_backup.prune(str(b), keep)
    assert sorted(os.listdir(str(b))) == sorted(left + ["migrate-x"])


# --- migrate-plan ---
HISTORY = ("2026-01-01T00:00:00Z %s live strategy=restart schema=2\n"
           "2026-01-02T00:00:00Z bbbbbbbbbbbb live strategy=restart schema=3\n"
           "2026-01-03T00:00:00Z %s failed strategy=restart schema=3\n"
           "2026-01-04T00:00:00Z %s live strategy=rollback schema=1\n") % (RID, RID, RID)


def test_the_schema_a_rollback_goes_down_to(root):
    (root / "srv/shop/history.log").write_text(HISTORY)
    (root / "srv/shop/migrations/0123456789ab").mkdir(parents=True)
    (root / "srv/shop/migrations/current").symlink_to("/srv/shop/migrations/0123456789ab")
    p = {"APP": "shop", "DOWN_TO_SCHEMA_OF": RID, "KEEP_BACKUPS": 3}
    assert verb(Fake(), root, "migrate-plan", p)[1] == {"mode": "down", "dir": "/srv/shop/migrations/current", "schema": 1,
                                                           "keep_bytes": 0, "ok": True}
    rc, out, _ = verb(Fake(), root, "migrate-plan", dict(p, DOWN_TO_SCHEMA_OF="c" * 12))
    assert rc == 1 and "the schema version of release cccccccccccc is unknown (it never went live here)" in out["error"]
    (root / "srv/shop/migrations/current").unlink()   # no set was ever applied
    assert verb(Fake(), root, "migrate-plan", p)[1]["mode"] == "none"


def test_up_copies_a_set_only_once(root):
    p = {"APP": "shop", "MIGRATIONS": "migrations-0123456789ab", "KEEP_BACKUPS": "3"}
    assert verb(Fake(), root, "migrate-plan", p)[1] == {"mode": "up", "dir": "/srv/shop/migrations/0123456789ab", "copy": True,
                                                           "keep_bytes": 0, "ok": True}
    assert verb(Fake(), root, "migrate-plan", dict(p, KEEP_BACKUPS_BYTES=5000000))[1]["keep_bytes"] == 5000000
    rc, out, _ = verb(Fake(), root, "migrate-plan", dict(p, KEEP_BACKUPS_BYTES="5MB"))
    assert rc == 1 and "flask-deploy:keepBackupsBytes: a size like 2GB" in out["error"]
    (root / "srv/shop/migrations/0123456789ab").mkdir(parents=True)
    assert verb(Fake(), root, "migrate-plan", p)[1]["copy"] is False
    for bad in ("migrations-../../x", "0123456789ab", 5):
        rc, out, _ = verb(Fake(), root, "migrate-plan", dict(p, MIGRATIONS=bad))
        assert rc == 1 and "bad migrations upload" in out["error"]


# --- release-commands: each command in a transient unit as the slot user ---
class UnitFake(Fake):
    """The backup for real; each release command's unit exits with RCS' next status."""
    def __init__(self, root, rcs=(), expand_option=True):
        super().__init__(root=root)
        self.rcs, self.expand_option = list(rcs), expand_option

    def run(self, argv, merge_output=False, input=None):
        if argv == ["systemd-run", "--help"]:   # systemd >= 254 has --expand-environment
            return subprocess.CompletedProcess(argv, 0, "  --expand-environment=BOOL\n" if self.expand_option else "  --pipe\n", "")
        if argv[0] == "systemd-run":
            self.calls.append(list(argv))
            rc = self.rcs.pop(0) if self.rcs else 0
            return subprocess.CompletedProcess(argv, rc, "output of %s\n" % argv[-1], None)
        return super().run(argv, merge_output)


def units(fake):
    return [c for c in fake.calls if c[0] == "systemd-run" and c[1:] != ["--help"]]


@pytest.mark.parametrize("expand_option", [True, False])
def test_a_command_reaches_the_shell_as_written_not_expanded_by_systemd(root, expand_option):
    """systemd expands $NAME and $$ in a unit's command line: `$$` (the shell's pid) would reach
    /bin/sh as `$`, and '$HOME' (single-quoted: literal to sh) as the unit's HOME."""
    (root / "run").mkdir()
    fake = UnitFake(root, expand_option=expand_option)
    rc, _, err = verb(fake, root, "release-commands", params(COMMANDS=json.dumps(["[ '$HOME' != /tmp ] && [ $$ -gt 1 ]"])))
    assert rc == 0, err
    argv = units(fake)[0]
    if expand_option:
        assert "--expand-environment=no" in argv and argv[-1] == "[ '$HOME' != /tmp ] && [ $$ -gt 1 ]"
    else:   # systemd < 254 (Debian 12's 252): each $ written as $$, which systemd turns back into $
        assert argv[-1] == "[ '$$HOME' != /tmp ] && [ $$$$ -gt 1 ]"


def test_each_command_runs_in_a_sandboxed_unit_as_the_new_slot_user_with_the_staged_environment(root):
    (root / "run").mkdir()
    fake = UnitFake(root)
    rc, out, err = verb(fake, root, "release-commands", params())
    assert rc == 0, err
    assert out["user"] == "shop_1" and out["passed"] == 2
    first, second = units(fake)
    assert first[-4:] == ["--", "/bin/sh", "-c", "flask db upgrade"] and second[-1] == "echo 'a b'\necho $HOME"
    props = [first[i + 1] for i, a in enumerate(first) if a == "-p"]
    assert {"User=shop_1", "Group=shop", "WorkingDirectory=/srv/shop/releases/" + RID, "EnvironmentFile=/etc/fdeploy/shop/env.desired",
            "Environment=RELEASE_ID=" + RID, "Environment=HOME=/tmp", "NoNewPrivileges=yes"} <= set(props), props
    assert "Environment=PATH=/srv/shop/releases/%s/.venv/bin:/usr/local/bin:/usr/bin:/bin" % RID in props
    assert "release command 1: flask db upgrade" in err and "output of flask db upgrade" in err and "2 passed" in err
    # the backup ran first, as the same user
    assert fake.calls.index(next(c for c in fake.calls if c[0] == "runuser")) < fake.calls.index(first)


def test_a_failing_command_stops_the_rest_and_names_the_backup(root):
    (root / "run").mkdir()
    db(root / "srv/shop/shared/db/app.sqlite3")
    fake = UnitFake(root, rcs=[3])
    rc, out, err = verb(fake, root, "release-commands", params())
    assert rc == 1 and len(units(fake)) == 1
    first = out["error"].split("\n")[0]
    assert first == ("release command 1 ('flask db upgrade') failed (exit 3) for release %s (flask-deploy:releaseCommands); it is not live,"
                     " the live release keeps serving" % RID)
    assert "A backup taken before the release commands is in /srv/shop/shared/backups/pre-release-" in out["error"]


def test_docker_runs_each_command_in_a_container_and_detaches_the_mounts(root, monkeypatch):
    (root / "run").mkdir()
    released = []
    monkeypatch.setattr(release_commands.staging, "docker_args", lambda h, p, log, w: {"args": ["--user", "2001:2001", "--read-only"]})
    monkeypatch.setattr(release_commands.mounts, "release", lambda h, app, slot: released.append(slot))
    fake = UnitFake(root, rcs=[0, 1])
    rc, out, _ = verb(fake, root, "release-commands", params(RUNTIME="docker", ENV_NAMES="A B", SHARED_DIRS="instance"))
    assert rc == 1 and released == ["release-cmd"]
    argv = units(fake)[0]
    name = next(a for a in argv if a.startswith("--unit="))[len("--unit="):]
    assert "ExecStopPost=-/usr/bin/docker rm -f " + name in argv
    tail = argv[argv.index("--") + 1:]
    assert tail == ["/usr/bin/docker", "run", "--rm", "--name", name, "--user", "2001:2001", "--read-only", "fdeploy-shop:" + RID,
                    "/bin/sh", "-c", "flask db upgrade"]
    assert not any(a.startswith("User=") for a in argv)
