"""The backup step's decisions (fdeploy_agent/backup.py, backup_lease.py) without a server: the
replica's lease over a fake SFTP server and a fake S3 (conditional writes), through the Host seam."""
import io
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))
from fdeploy_agent import backup, backup_lease as bl
from fdeploy_agent.cli import main
from fdeploy_agent.host import Host
from helpers import app_root

OLD, NEW = "a" * 32, "b" * 32
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-body\n-----END OPENSSH PRIVATE KEY-----\n"


class Replica:
    """The target: files by path; sftp batches and curl requests as the real tools do them."""

    def __init__(self) -> None:
        self.files = {}
        self.down = False
        self.etags = 0
        self.before_write = None   # a hook: another server writes first
        self.calls = []

    def run(self, argv, merge_output=False, input=None):
        self.calls.append((list(argv), input))
        if self.down:
            return subprocess.CompletedProcess(argv, 255 if argv[0] == "sftp" else 28, "", "connect: no route to host")
        return self.sftp(argv, input) if argv[0] == "sftp" else self.curl(argv, input)

    def sftp(self, argv, batch):
        rc = 0
        for line in batch.splitlines():
            ignore, words = line.startswith("-"), line.lstrip("-").split()
            ok = True
            if words[0] == "get":
                ok = words[1] in self.files
                if ok:
                    open(words[2], "wb").write(self.files[words[1]])
            elif words[0] == "put":
                if self.before_write:
                    self.before_write(self)
                    self.before_write = None
                self.files[words[2]] = open(words[1], "rb").read()
            elif words[0] == "rm":
                ok = self.files.pop(words[1], None) is not None
            elif words[0] == "ln":
                ok = words[2] not in self.files   # link(2) never overwrites
                if ok:
                    self.files[words[2]] = self.files[words[1]]
            if not ok and not ignore:
                return subprocess.CompletedProcess(argv, 1, "", "failed: %s" % line)
        return subprocess.CompletedProcess(argv, rc, "", "")

    def curl(self, argv, config):
        assert re.fullmatch(r'user = "[^"]+:[^"]+"\n', config)
        method = argv[argv.index("-X") + 1]
        hdrs = [argv[i + 1] for i, a in enumerate(argv) if a == "-H"]
        hfile, ofile, key = argv[argv.index("-D") + 1], argv[argv.index("-o") + 1], "lease"
        cur = self.files.get(key)
        etag = '"%d"' % self.etags
        if method == "GET":
            code, body = (200, cur) if cur is not None else (404, b"NoSuchKey")
        else:
            if self.before_write:
                self.before_write(self)
                self.before_write = None
                cur, etag = self.files.get(key), '"%d"' % self.etags
            cond = [h for h in hdrs if h.startswith("If-")][0]
            if cond == "If-None-Match: *" and cur is not None or cond.startswith("If-Match: ") and cond[10:] != etag:
                code, body = 412, b"PreconditionFailed"
            else:
                self.files[key] = open(argv[argv.index("--data-binary") + 1][1:], "rb").read()
                self.etags += 1
                code, body = 200, b""
                etag = '"%d"' % self.etags
        open(hfile, "w").write("HTTP/1.1 %d X\r\nETag: %s\r\n\r\n" % (code, etag))
        open(ofile, "wb").write(body)
        return subprocess.CompletedProcess(argv, 0, str(code), "")

    def owner(self, kind):
        raw = self.files.get("/home/backups/app/fdeploy-owner" if kind == "sftp" else "lease")
        return raw.decode().split()[0] if raw else None

    def set_owner(self, kind, line):
        self.files["/home/backups/app/fdeploy-owner" if kind == "sftp" else "lease"] = line.encode()
        self.etags += 1


def params(kind, **over):
    p = {"APP": "shop", "VERSION": "v0.5.2", "SHA256": "0" * 64, "UPLOAD": "litestream-0123456789ab", "KIND": kind,
         "CONFIG": "#REPLICA x\ndbs:\n  - path: \"/srv/shop/shared/db/app.sqlite3\"\n", "DATABASES": "db/app.sqlite3",
         "VERIFY_EVERY": "24h", "HOST": "10.0.0.5", "TAKEOVER": "", "DEPLOY": "p/s"}
    if kind == "sftp":
        p.update(R_HOST="10.0.0.9", R_PORT="22", R_USER="backups", R_PATH="/home/backups/app", R_HOSTKEY="ssh-ed25519 AAAAC3Nz",
                 CREDENTIALS=json.dumps({"sftpKey": KEY}))
    else:
        p.update(R_BUCKET="backups", R_PATH="app", ENDPOINT="http://10.0.0.9:7070", REGION="us-east-1",
                 CREDENTIALS=json.dumps({"accessKeyId": "AKID", "secretAccessKey": "s3cret-value"}))
    p.update(over)
    return p


@pytest.fixture
def server(tmp_path):
    root = app_root(tmp_path, "run/fdeploy", "srv/shop/shared/db")
    replica = Replica()
    return Host(root=str(root), run=replica.run), replica, root


def verb(host, name, p):
    out, err = io.StringIO(), io.StringIO()
    rc = main([name], stdin=io.StringIO(json.dumps(p)), stdout=out, stderr=err, host=host)
    return rc, json.loads(out.getvalue()), err.getvalue()


def with_db(root):
    (root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"")


KINDS = ("sftp", "s3")


@pytest.mark.parametrize("kind", KINDS)
def test_first_claim_then_ours(server, kind):
    host, replica, root = server
    with_db(root)
    rc, res, _ = verb(host, "backup-claim", params(kind))
    me = (root / "etc/fdeploy/shop.backup-id").read_text()
    assert rc == 0 and res["say"] == ["lease: the replica is claimed for this server %s (host 10.0.0.5)" % me]
    assert res["fresh"] is False
    assert replica.owner(kind) == me
    rc, res, _ = verb(host, "backup-claim", params(kind))
    assert res["say"] == ["lease: the replica is this server's %s (host 10.0.0.5)" % me]
    # the credentials reached no command line, and the claim's temporary folder is gone
    assert not any(KEY.splitlines()[1] in " ".join(a) or "s3cret" in " ".join(a) for a, _ in replica.calls)
    assert os.listdir(root / "run/fdeploy") == []


@pytest.mark.parametrize("kind", KINDS)
def test_another_servers_replica_refused_naming_both(server, kind):
    host, replica, root = server
    with_db(root)
    replica.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    rc, res, err = verb(host, "backup-claim", params(kind))
    me = (root / "etc/fdeploy/shop.backup-id").read_text()
    assert rc == 1
    e = res["error"]
    assert "belongs to another server: %s (host 10.0.0.7, claimed 2026-12-06T10:00:00Z)" % NEW in e
    assert "this server is %s (host 10.0.0.5) and has a database of its own" % me in e
    assert "pulumi config set --path backup.takeover %s" % NEW in e and "point server.host (and server.hostKey) back at 10.0.0.7" in e
    assert replica.owner(kind) == NEW
    assert not (root / "etc/fdeploy/shop/backup-sftp-key").exists() and not (root / "etc/fdeploy/shop.backup.conf").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_takeover_names_the_owner(server, kind):
    host, replica, root = server
    with_db(root)
    replica.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    rc, res, _ = verb(host, "backup-claim", params(kind, TAKEOVER=NEW))
    me = (root / "etc/fdeploy/shop.backup-id").read_text()
    assert rc == 0, res
    assert re.match(r"lease: this server %s \(host 10.0.0.5\) took the replica over from server %s .*backup.takeover names that server"
                    % (me, NEW), res["say"][0])
    assert replica.owner(kind) == me
    # the setting left in place does nothing more; on the other server it is refused (names itself)
    assert "has nothing to do" in verb(host, "backup-claim", params(kind, TAKEOVER=NEW))[1]["say"][1]


@pytest.mark.parametrize("kind", KINDS)
def test_takeover_of_another_id_or_itself_refused(server, kind):
    host, replica, root = server
    with_db(root)
    me = backup.server_id(host, "shop")
    replica.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    assert "which is not the owner" in verb(host, "backup-claim", params(kind, TAKEOVER=OLD))[1]["error"]
    assert "names this server itself" in verb(host, "backup-claim", params(kind, TAKEOVER=me))[1]["error"]
    assert replica.owner(kind) == NEW


@pytest.mark.parametrize("kind", KINDS)
def test_fresh_server_restores_and_takes_over(server, kind):
    host, replica, root = server
    replica.set_owner(kind, "%s\n" % OLD)   # an older lease: the id alone
    rc, res, _ = verb(host, "backup-claim", params(kind))
    assert rc == 0 and res["fresh"] is True
    assert "took the replica over from server %s (host not recorded: an older lease): this server has no database" % OLD in res["say"][0]


@pytest.mark.parametrize("kind", KINDS)
def test_unreachable_warns_unless_fresh(server, kind):
    host, replica, root = server
    replica.down = True
    rc, res, _ = verb(host, "backup-claim", params(kind))
    assert rc == 1 and "could not restore from the replica" in res["error"] and "a fresh, empty database never replaces the backups" in res["error"]
    with_db(root)
    rc, res, _ = verb(host, "backup-claim", params(kind))
    assert rc == 0 and res["say"][0].startswith("warning: backup of 'shop': the replica cannot be reached to claim it")


@pytest.mark.parametrize("kind", KINDS)
def test_a_claim_racing_another_server_is_refused(server, kind):
    """Two servers at once: the other's write lands between our read and our write; ours does not
    overwrite it (If-None-Match / link(2)), and the deploy is refused, naming the winner."""
    host, replica, root = server
    with_db(root)
    replica.before_write = lambda r: r.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    rc, res, _ = verb(host, "backup-claim", params(kind))
    assert rc == 1 and "claimed by another server during this deploy: %s" % NEW in res["error"]
    assert replica.owner(kind) == NEW


@pytest.mark.parametrize("kind", KINDS)
def test_takeover_racing_another_server_does_not_overwrite(server, kind):
    host, replica, root = server
    with_db(root)
    replica.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    third = "c" * 32
    replica.before_write = lambda r: r.set_owner(kind, "%s 10.0.0.8 2026-12-06T11:00:00Z\n" % third)
    rc, res, _ = verb(host, "backup-claim", params(kind, TAKEOVER=NEW))
    if kind == "s3":   # If-Match on the ETag just read: 412, read again, a new owner: refused
        assert rc == 1 and "claimed by another server during this deploy: %s" % third in res["error"]
        assert replica.owner(kind) == third
    else:   # sftp: rm then link; the link of whoever comes first wins, and the read back tells
        assert replica.owner(kind) in (third, backup.server_id(host, "shop"))


class Systemd:
    """systemctl and journalctl: what ran; the restore unit's outcome (it makes the database when
    the replica has one)."""

    def __init__(self, root, restore_ok=True, replica_has_db=True):
        self.root, self.restore_ok, self.replica_has_db, self.ran = root, restore_ok, replica_has_db, []

    def run(self, argv, merge_output=False, input=None):
        self.ran.append(list(argv))
        rc, out = 0, ""
        if argv[:2] == ["systemctl", "start"] and argv[2].endswith("-restore.service"):
            rc = 0 if self.restore_ok else 1
            if self.restore_ok and self.replica_has_db:
                (self.root / "srv/shop/shared/db/app.sqlite3").write_bytes(b"restored")
        elif argv[0] == "journalctl":
            out = "Starting x\ncannot connect: no route to host\n"
        return subprocess.CompletedProcess(argv, rc, out, "")


def start(root, p, **kw):
    sd = Systemd(root, **kw)
    rc, res, err = verb(Host(root=str(root), run=sd.run), "backup-start", p)
    return rc, res, err, sd


@pytest.mark.parametrize("kind", KINDS)
def test_start_writes_root_only_credentials_units_and_keeps_the_formats(server, kind):
    host, replica, root = server
    with_db(root)
    rc, res, _, sd = start(root, params(kind))
    assert rc == 0 and res["changed"] is True and res["missing"] is False and res["say"] == []
    cred = root / ("etc/fdeploy/shop/backup-sftp-key" if kind == "sftp" else "etc/fdeploy/shop/backup.env")
    assert oct(cred.stat().st_mode & 0o777) == "0o600"
    if kind == "sftp":
        assert cred.read_text() == KEY
        assert (root / "etc/fdeploy/shop.backup-known-hosts").read_text() == "10.0.0.9 ssh-ed25519 AAAAC3Nz\n"
    else:
        assert cred.read_text() == 'FDEPLOY_BACKUP_ACCESS_KEY_ID="AKID"\nFDEPLOY_BACKUP_SECRET_ACCESS_KEY="s3cret-value"\n'
    conf = (root / "etc/fdeploy/shop.backup.conf").read_text()
    me = (root / "etc/fdeploy/shop.backup-id").read_text()
    # the shell format backup.sh wrote with printf %q (a server deployed before reads the same)
    assert conf.startswith("ME=%s\nHOST=10.0.0.5\nKIND=%s\nLITESTREAM=/usr/local/lib/fdeploy/litestream-v0.5.2/litestream\n" % (me, kind))
    assert ("R_BUCKET=''\n" if kind == "sftp" else "R_HOST=''\n") in conf
    unit = (root / "etc/systemd/system/fdeploy-shop-backup.service").read_text()
    assert "User=shop\n" in unit and "ProtectSystem=strict\n" in unit
    # root's copy of the agent, never a file the app user can write (the bundle, backup-run.sh before)
    assert "\nExecStart=/usr/bin/python3 -I -B /usr/local/lib/fdeploy/backup-agent backup-run --app shop\n" in unit
    drill = (root / "etc/systemd/system/fdeploy-shop-backup-verify.service").read_text()
    assert ("\nExecStart=/usr/bin/python3 -I -B /usr/local/lib/fdeploy/backup-agent backup-verify-db --app shop "
            "--set DB=/srv/shop/shared/db/app.sqlite3\n") in drill
    assert ("LoadCredential=sftp-key:/etc/fdeploy/shop/backup-sftp-key" if kind == "sftp" else "EnvironmentFile=/etc/fdeploy/shop/backup.env") in unit
    assert (root / "etc/systemd/system/fdeploy-shop-backup-verify.timer").read_text().count("=24h") == 2
    assert ["systemctl", "enable", "--now", "--quiet", "fdeploy-shop-backup-verify.timer"] in sd.ran
    assert start(root, params(kind))[1]["changed"] is False   # a second up changes nothing
    assert "secret" not in json.dumps(res) and "s3cret" not in json.dumps(res)
    # backup.verifyEvery removed: the drill's timer stopped and its units gone; replication untouched
    rc, res, _, sd = start(root, params(kind, VERIFY_EVERY=""))
    assert res["changed"] is False and ["systemctl", "disable", "--now", "--quiet", "fdeploy-shop-backup-verify.timer"] in sd.ran
    assert not (root / "etc/systemd/system/fdeploy-shop-backup-verify.timer").exists()
    assert not (root / "etc/systemd/system/fdeploy-shop-backup-verify.service").exists()


def test_start_on_a_new_server_restores_first(server):
    host, replica, root = server
    rc, res, err, sd = start(root, params("sftp"))
    assert rc == 0 and res["missing"] is False and re.fullmatch(r"restore: database restored from the replica in \d+ s", res["say"][0])
    assert "no database on this server: restoring from the replica" in err
    assert sd.ran.index(["systemctl", "daemon-reload"]) < sd.ran.index(["systemctl", "start", "fdeploy-shop-restore.service"])


def test_start_first_deploy_replica_empty(server):
    host, replica, root = server
    rc, res, _, _ = start(root, params("sftp"), replica_has_db=False)
    assert rc == 0 and res["missing"] is True and res["say"] == ["restore: the replica holds no database yet (a first deploy)"]


def test_start_restore_failure_stops_a_new_server_and_warns_elsewhere(server):
    host, replica, root = server
    rc, res, err, _ = start(root, params("sftp"), restore_ok=False)
    assert rc == 1 and "a fresh, empty database never replaces the backups" in res["error"] and "no route to host" in err
    with_db(root)
    rc, res, _, _ = start(root, params("sftp"), restore_ok=False)
    assert rc == 0 and res["say"][0].startswith("warning: backup of 'shop': the replica cannot be reached to restore")
    assert res["say"][0].endswith("(cannot connect: no route to host)")


@pytest.mark.parametrize("key,value,fix", [
    ("TAKEOVER", "server-1", "32 hex digits"), ("VERIFY_EVERY", "daily", "backup.verifyEvery"),
    ("DATABASES", "../etc/x", "backup.databases"), ("R_PATH", "relative", "sftp://user@host"),
    ("VERSION", "latest", "Litestream version"), ("CREDENTIALS", "{}", "backupSecrets"),
])
def test_bad_settings_refused_before_anything_changes(server, key, value, fix):
    host, replica, root = server
    rc, res, _ = verb(host, "backup-claim", params("sftp", **{key: value}))
    assert rc == 1 and fix in res["error"]
    assert replica.calls == [] and not (root / "etc/fdeploy/shop.backup-id").exists()


def test_s3_credential_with_a_quote_refused(server):
    host, _, _ = server
    rc, res, _, _ = start(server[2], params("s3", CREDENTIALS=json.dumps({"accessKeyId": "A", "secretAccessKey": 'x"y'})))
    assert rc == 1 and "a quote, backslash or newline" in res["error"] and 'x"y' not in res["error"]


@pytest.mark.parametrize("kind", KINDS)
def test_fence_in_the_unit(server, kind, monkeypatch):
    """backup-check as the backup unit runs it: the run conf, the credentials systemd handed over."""
    host, replica, root = server
    start(root, params(kind))
    me = (root / "etc/fdeploy/shop.backup-id").read_text()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x")
    monkeypatch.setenv("FDEPLOY_BACKUP_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("FDEPLOY_BACKUP_SECRET_ACCESS_KEY", "s3cret-value")
    assert verb(host, "backup-check", {"APP": "shop"})[1]["status"] == "ours"   # none yet: claimed now
    assert replica.owner(kind) == me
    replica.set_owner(kind, "%s 10.0.0.7 2026-12-06T10:00:00Z\n" % NEW)
    rc, res, err = verb(host, "backup-check", {"APP": "shop"})
    assert res["status"] == "other" and "the replica now belongs to server %s (host 10.0.0.7" % NEW in err
    replica.down = True
    assert verb(host, "backup-check", {"APP": "shop"})[1]["status"] == "unreachable"
    if kind == "sftp":
        assert replica.calls[-1][0][replica.calls[-1][0].index("-i") + 1] == "/run/credentials/x/sftp-key"


def test_lag_lines():
    local = json.dumps([{"local_txid": "0000000000000010"}])
    replica = json.dumps([{"max_txid": "000000000000000c", "timestamp": "2026-12-06T10:00:00Z"},
                          {"max_txid": "000000000000000e", "timestamp": "2026-12-06T10:00:05Z"}])
    at = 1796551205.0   # 2026-12-06T10:00:05Z
    assert backup.lag_lines(local, replica, now=at + 3) == [
        "replica: txid 000000000000000e, written 3 s ago", "local: txid 0000000000000010; lag: 2 transactions behind"]
    assert backup.lag_lines("", "[]") == ["replica: empty"]
    assert backup.lag_lines("garbage", replica, now=at)[1:] == []


def test_lease_parse():
    assert bl.parse(b"") is None
    assert bl.parse(b"abc 1.2.3.4 2026-01-01T00:00:00Z extra\nsecond") == bl.Lease("abc", "1.2.3.4", "2026-01-01T00:00:00Z")
    assert bl.parse(b"$(rm -rf /)\n").id == "rm -rf".split()[0]
    assert bl.parse(b"\n").id == "(unreadable)"
