"""The backup step and `fdeploy backup` as root (fdeploy_agent/backup_ops.py, backup_install.py)
without a server: the order of the deploy (nothing changes before the lease is decided), the
installs, the upgrade from backup-run.sh, delete, verify, restore, status."""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
from fdeploy_agent import backup_install, backup_ops
from fdeploy_agent.cli import main
from fdeploy_agent.host import Host
from helpers import app_root
from test_agent_backup import NEW, Replica, params

BINARY = b"\x7fELF litestream"
SHA = hashlib.sha256(BINARY).hexdigest()


class Server:
    """The target (Replica), systemctl, systemd-run (the app user's verbs: their results), curl."""

    def __init__(self, root):
        self.root, self.replica, self.ran = root, Replica(), []
        self.active = {"fdeploy-shop-backup.service": "active"}
        self.app_results = {}   # verb -> (rc, result, stderr)
        self.download = None

    def run(self, argv, merge_output=False, input=None):
        argv = list(argv)
        if argv[0] in ("sftp",) or (argv[0] == "curl" and "--aws-sigv4" in argv):
            return self.replica.run(argv, merge_output, input)
        self.ran.append(argv)
        rc, out, err = 0, "", ""
        if argv[0] == "curl":
            if self.download is None:
                rc, err = 22, "curl: (6) Could not resolve host"
            else:
                open(argv[argv.index("-o") + 1], "wb").write(self.download)
        elif argv[:2] == ["systemctl", "is-active"]:
            out = self.active.get(argv[2], "inactive") + "\n"
        elif argv[:2] == ["systemctl", "start"] and argv[2].endswith("-restore.service"):   # -if-db-not-exists
            db = self.root / "srv/shop/shared/db/app.sqlite3"
            if not db.exists():
                db.write_bytes(b"restored")
        elif argv[:2] == ["systemctl", "list-units"]:
            out = "fdeploy-shop@blue.service loaded active running x\n"
        elif argv[:2] == ["systemctl", "show"]:
            out = ""
        elif argv[0] == "systemd-run":
            verb = argv[argv.index("/usr/local/lib/fdeploy/backup-agent") + 1]
            rc, res, err = self.app_results.get(verb, (0, {}, ""))
            out = json.dumps(dict(res, ok=rc == 0)) + "\n"
        return subprocess.CompletedProcess(argv, rc, out, err)

    def systemd_runs(self):
        return [a for a in self.ran if a[0] == "systemd-run"]


@pytest.fixture
def srv(tmp_path, monkeypatch):
    root = app_root(tmp_path, "run/fdeploy", "srv/shop/shared/db", "usr/local/lib", "home/deploy/.fdeploy/shop/litestream-0123456789ab")
    (root / "home/deploy/.fdeploy/shop/litestream-0123456789ab/litestream").write_bytes(BINARY)
    monkeypatch.setattr(backup_install, "bundle_home", lambda: str(root / "home/deploy/.fdeploy/shop"))
    monkeypatch.setattr(backup_ops.time, "sleep", lambda s: None)
    s = Server(root)
    return s, Host(root=str(root), run=s.run), root


def verb(host, name, p):
    out, err = io.StringIO(), io.StringIO()
    rc = main(name, stdin=io.StringIO(json.dumps(p)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def deploy(host, **over):
    return verb(host, ["backup-deploy"], params("sftp", **dict({"SHA256": SHA}, **over)))


def test_deploy_installs_configures_and_starts(srv):
    s, host, root = srv
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"live")
    rc, res, err = deploy(host)
    assert rc == 0, err
    assert res["say"][0].startswith("lease: the replica is claimed for this server") and res["changed"] is True
    lib = root / "usr/local/lib/fdeploy"
    assert (lib / "litestream-v0.5.2/litestream").read_bytes() == BINARY and (lib / "litestream-v0.5.2/litestream").stat().st_mode & 0o777 == 0o755
    link = os.readlink(lib / "backup-agent")
    assert link.startswith("/usr/local/lib/fdeploy/agent-") and (lib / os.path.basename(link) / "fdeploy_agent/backup_unit.py").exists()
    assert ["systemctl", "restart", "fdeploy-shop-backup.service"] in s.ran
    # the same inputs again: nothing installed, nothing restarted
    s.ran.clear()
    rc, res, _ = deploy(host)
    assert rc == 0 and res["changed"] is False and ["systemctl", "restart", "fdeploy-shop-backup.service"] not in s.ran
    assert not any(a[0] == "curl" for a in s.ran)


def test_deploy_refused_by_the_lease_changes_nothing(srv):
    s, host, root = srv
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"live")
    s.replica.set_owner("sftp", "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    rc, res, _ = deploy(host)
    assert rc == 1 and "belongs to another server: %s" % NEW in res["error"]
    assert os.listdir(root / "usr/local/lib") == [] and os.listdir(root / "etc/systemd/system") == []
    assert not any(a[0] == "systemctl" for a in s.ran)


def test_upgrade_from_backup_run_sh_rewrites_the_units_and_restarts(srv):
    """A server deployed before: its units ran /usr/local/lib/fdeploy/backup-run.sh."""
    s, host, root = srv
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"live")
    assert deploy(host)[0] == 0
    unit = root / "etc/systemd/system/fdeploy-shop-backup.service"
    unit.write_text(unit.read_text().replace("/usr/bin/python3 -I -B /usr/local/lib/fdeploy/backup-agent backup-run --app shop",
                                             "/usr/local/lib/fdeploy/backup-run.sh run /etc/fdeploy/shop.backup.conf"))
    (root / "usr/local/lib/fdeploy/backup-run.sh").write_text("#!/bin/bash\n")
    s.ran.clear()
    rc, res, _ = deploy(host)
    assert rc == 0 and res["changed"] is True
    assert "backup-run.sh" not in unit.read_text() and not (root / "usr/local/lib/fdeploy/backup-run.sh").exists()
    assert s.ran.index(["systemctl", "daemon-reload"]) < s.ran.index(["systemctl", "restart", "fdeploy-shop-backup.service"])


def test_first_deploy_creates_the_database_as_the_app_user_in_the_sandbox(srv):
    s, host, root = srv
    s.replica.files.clear()
    orig = s.run

    def run(argv, merge_output=False, input=None):   # the replica has no database: the restore unit makes none
        if list(argv[:2]) == ["systemctl", "start"] and argv[2].endswith("-restore.service"):
            s.ran.append(list(argv))
            return subprocess.CompletedProcess(argv, 0, "", "")
        return orig(argv, merge_output, input)
    rc, res, err = verb(Host(root=str(root), run=run), ["backup-deploy"], params("sftp", SHA256=SHA))
    assert rc == 0, err
    argv = s.systemd_runs()[0]
    props = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
    assert "User=shop" in props and "ProtectSystem=strict" in props and "RuntimeMaxSec=60" in props
    assert argv[argv.index("backup-newdb"):] == ["backup-newdb", "--app", "shop", "--set", "DB=/srv/shop/shared/db/app.sqlite3"]
    s.app_results["backup-newdb"] = (1, {"error": "x"}, "error: database is locked")
    rc, res, _ = verb(Host(root=str(root), run=run), ["backup-deploy"], params("sftp", SHA256=SHA))
    assert rc == 1 and res["error"].startswith("could not create shared/db/app.sqlite3 as shop within 60 s") and "database is locked" in res["error"]


def test_litestream_checksum_and_download(srv):
    s, host, root = srv
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"live")
    rc, res, _ = deploy(host, SHA256="1" * 64)
    assert rc == 1 and "does not match the pinned sha256 " + "1" * 64 in res["error"]
    assert not (root / "usr/local/lib/fdeploy/litestream-v0.5.2").exists()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("litestream")
        info.size = len(BINARY)
        tar.addfile(info, io.BytesIO(BINARY))
    s.download = buf.getvalue()
    url = dict(URL="https://github.com/benbjohnson/litestream/releases/download/v0.5.2/x.tar.gz", UPLOAD="")
    rc, res, _ = deploy(host, SHA256=hashlib.sha256(s.download).hexdigest(), **url)
    assert rc == 0 and (root / "usr/local/lib/fdeploy/litestream-v0.5.2/litestream").read_bytes() == BINARY
    s.download = None
    rc, res, _ = deploy(host, SHA256="2" * 64, **url)
    assert rc == 1 and res["error"].startswith("could not download https://github.com/")


def test_agent_copy_per_content(tmp_path):
    src = tmp_path / "agent"
    (src / "fdeploy_agent").mkdir(parents=True)
    (src / "fdeploy_agent/x.py").write_text("a = 1\n")
    root = tmp_path / "root"
    (root / "usr/local/lib").mkdir(parents=True)
    host = Host(root=str(root))
    (root / "usr/local/lib/fdeploy/agent-0000000000000000").mkdir(parents=True)   # an older copy
    assert backup_install.agent_copy(host, str(src)) is True
    lib = root / "usr/local/lib/fdeploy"
    first = os.readlink(lib / "backup-agent")
    assert sorted(os.listdir(lib)) == ["agent-" + backup_install.content_hash(str(src)), "backup-agent"]
    assert (lib / first.rsplit("/", 1)[1] / "fdeploy_agent/x.py").stat().st_mode & 0o777 == 0o644
    assert backup_install.agent_copy(host, str(src)) is False
    (src / "fdeploy_agent/x.py").write_text("a = 2\n")
    assert backup_install.agent_copy(host, str(src)) is True and os.readlink(lib / "backup-agent") != first
    assert len([n for n in os.listdir(lib) if n.startswith("agent-")]) == 1


def test_delete_removes_units_and_files_keeps_data(srv):
    s, host, root = srv
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"live")
    assert deploy(host)[0] == 0
    rc, res, _ = verb(host, ["backup-delete", "--app", "shop"], {})
    assert rc == 0
    assert os.listdir(root / "etc/systemd/system") == []
    assert not (root / "etc/fdeploy/shop/backup-sftp-key").exists() and not (root / "etc/fdeploy/shop.litestream.yml").exists()
    assert (root / "srv/shop/shared/db/app.sqlite3").read_bytes() == b"live"
    assert verb(host, ["backup-delete", "--app", "shop"], {})[0] == 0   # again (a re-run after a crash)


@pytest.fixture
def deployed(srv):
    s, host, root = srv
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"live")
    assert deploy(host)[0] == 0
    s.ran.clear()
    return srv


def test_verify_runs_the_drill_per_database_as_the_app_user(deployed):
    s, host, root = deployed
    s.app_results["backup-verify-db"] = (0, {"lines": []}, "restore: ok in 0 s\nintegrity_check: ok\nrows notes: replica 3, live 3")
    rc, res, err = verb(host, ["backup-verify"], {"APP": "shop"})
    assert rc == 0 and res["summary"] == "verify: ok" and "rows notes: replica 3, live 3" in err and "replication: active" in err
    props = [a for a in s.systemd_runs()[0] if a.startswith("LoadCredential=")]
    assert props == ["LoadCredential=sftp-key:/etc/fdeploy/shop/backup-sftp-key"]
    s.app_results["backup-verify-db"] = (1, {"error": "x"}, "integrity_check: malformed")
    rc, res, _ = verb(host, ["backup-verify"], {"APP": "shop"})
    assert rc == 1 and res["error"].startswith("fdeploy backup verify: FAILED for /srv/shop/shared/db/app.sqlite3")


def test_restore_fetches_all_first_then_stops_swaps_and_starts(deployed):
    s, host, root = deployed
    s.app_results["backup-swap"] = (0, {"kept": "/srv/shop/shared/db/app.sqlite3.before-restore-x"}, "")
    rc, res, err = verb(host, ["backup-restore"], {"APP": "shop", "TIMESTAMP": "2026-12-05T07:00:00Z"})
    assert rc == 0 and res["summary"] == "restore: done (to 2026-12-05T07:00:00Z); the app runs again: fdeploy-shop@blue.service"
    steps = [a[a.index("/usr/local/lib/fdeploy/backup-agent") + 1] if a[0] == "systemd-run" else " ".join(a[:2])
             for a in s.ran if a[0] == "systemd-run" or a[1] in ("stop", "start")]
    assert steps == ["backup-fetch", "systemctl stop", "backup-swap", "systemctl start"]
    assert ["systemctl", "stop", "fdeploy-shop-backup.service", "fdeploy-shop@blue.service"] in s.ran
    assert "--set" in s.systemd_runs()[0] and "TIMESTAMP=2026-12-05T07:00:00Z" in s.systemd_runs()[0]


def test_restore_failed_fetch_stops_nothing_failed_swap_starts_again(deployed):
    s, host, root = deployed
    s.app_results["backup-fetch"] = (1, {"error": "x"}, "cannot connect")
    rc, res, _ = verb(host, ["backup-restore"], {"APP": "shop"})
    assert rc == 1 and "nothing was changed" in res["error"] and not any(a[1] == "stop" for a in s.ran if a[0] == "systemctl")
    s.app_results["backup-fetch"] = (0, {}, "")
    s.app_results["backup-swap"] = (1, {"error": "x"}, "error: disk full")
    rc, res, _ = verb(host, ["backup-restore"], {"APP": "shop"})
    assert rc == 1 and "disk full" in res["error"]
    assert ["systemctl", "start", "fdeploy-shop-backup.service", "fdeploy-shop@blue.service"] in s.ran
    rc, res, _ = verb(host, ["backup-restore"], {"APP": "shop", "TIMESTAMP": "yesterday"})
    assert rc == 1 and res["error"] == "bad timestamp 'yesterday' (expected e.g. 2026-12-05T07:00:00Z)"


def test_restore_to_a_txid_restores_one_database_to_that_point(deployed):
    s, host, root = deployed
    s.app_results["backup-swap"] = (0, {"kept": "/srv/shop/shared/db/app.sqlite3.before-restore-x"}, "")
    rc, res, err = verb(host, ["backup-restore"], {"APP": "shop", "TXID": "00000000000000a3"})
    assert rc == 0 and res["summary"].startswith("restore: done (to txid 00000000000000a3)"), err
    fetch = s.systemd_runs()[0]
    assert "TXID=00000000000000a3" in fetch and "DB=/srv/shop/shared/db/app.sqlite3" in fetch and len(s.systemd_runs()) == 2
    for bad, message in (({"TXID": "a3"}, "bad txid 'a3'"), ({"TXID": "00000000000000a3", "TIMESTAMP": "2026-12-05T07:00:00Z"}, "not both"),
                         ({"TXID": "00000000000000a3", "DB": "../etc/x.db"}, "bad database"),
                         ({"TXID": "00000000000000a3", "DB": "instance/other.db"}, "is not a database the replica holds")):
        rc, res, _ = verb(host, ["backup-restore"], dict({"APP": "shop"}, **bad))
        assert rc == 1 and message in res["error"], res


def test_report(deployed):
    s, host, root = deployed
    s.app_results["backup-status"] = (0, {"lines": ["lease: this server x", "lag: 0 transactions behind"]}, "")
    rc, res, _ = verb(host, ["backup-report"], {"APP": "shop"})
    assert rc == 0 and res["summary"] == ["replication: active", "lease: this server x", "lag: 0 transactions behind",
                                          "last verify: not yet on this server (the timer: inactive)"]


def test_not_configured_here(srv):
    s, host, root = srv
    rc, res, _ = verb(host, ["backup-verify"], {"APP": "shop"})
    assert rc == 1 and "has no offsite backup configured on this server" in res["error"]
