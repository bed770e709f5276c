"""pgBackRest for a managed PostgreSQL (pg_backup.py, pg_backup_ops.py) without a server: the config it
writes (the S3 keys only in a root:postgres 0640 file, never on a command line), the settings WAL
archiving needs, what a deploy decides (restore on a brand-new server whose repository holds a backup,
else create/keep), a deploy the lease refuses changes nothing, the status lines, the timestamp form."""
import json
import os
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "components", "scripts", "agent"))

from fdeploy_agent import backup_lease as bl  # noqa: E402
from fdeploy_agent import pg_backup as pb  # noqa: E402
from fdeploy_agent import pg_backup_delete  # noqa: E402
from fdeploy_agent import pg_backup_ops as ops  # noqa: E402
from fdeploy_agent import pg_server  # noqa: E402
from fdeploy_agent.errors import AgentError  # noqa: E402
from fdeploy_agent.host import Host  # noqa: E402

SECRET = "s3cret-key-0123456789"
PARAMS = {"APP": "shop", "HOST": "10.0.0.5", "R_BUCKET": "backups", "R_PATH": "shop/pg", "ENDPOINT": "https://10.0.0.9:7070",
          "REGION": "us-east-1", "RETENTION": "72h", "SYNC_INTERVAL": "1s", "VERIFY_EVERY": "24h",
          "CREDENTIALS": json.dumps({"accessKeyId": "AKIA", "secretAccessKey": SECRET})}


def test_params_are_checked_naming_the_setting():
    p = pb.check_params(PARAMS)
    assert (p["retention_days"], p["archive_timeout"], p["verify_every"], p["path"]) == (3, 1, 86400, "shop/pg")
    with pytest.raises(AgentError, match=r"backup.endpoint: an https:// URL"):
        pb.check_params(dict(PARAMS, ENDPOINT="http://10.0.0.9:7070"))
    with pytest.raises(AgentError, match=r"backupSecrets.secretAccessKey"):
        pb.check_params(dict(PARAMS, CREDENTIALS=json.dumps({"accessKeyId": "A", "secretAccessKey": "a b"})))
    with pytest.raises(AgentError, match=r"backup.syncInterval"):
        pb.check_params(dict(PARAMS, SYNC_INTERVAL="soon"))
    assert pb.check_params(dict(PARAMS, SYNC_INTERVAL="5s", RETENTION="200h"))["archive_timeout"] == 5


def test_the_config_names_the_repository_the_keys_only_there():
    p = pb.check_params(PARAMS)
    text = pb.conf_text(p, "/var/lib/postgresql/15/main")
    for line in ["repo1-type=s3", "repo1-path=/shop/pg", "repo1-s3-bucket=backups", "repo1-s3-endpoint=10.0.0.9", "repo1-storage-port=7070",
                 "repo1-s3-uri-style=path", "repo1-s3-key-secret=" + SECRET, "repo1-retention-full-type=time", "repo1-retention-full=3",
                 "[shop]", "pg1-path=/var/lib/postgresql/15/main"]:
        assert line in text.splitlines()
    assert pb.credentials_of(text) == bl.Credentials(access_key_id="AKIA", secret_access_key=SECRET)
    aws = pb.conf_text(pb.check_params(dict(PARAMS, ENDPOINT="", REGION="eu-west-1")), "/d")
    assert "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com" in aws and "repo1-s3-uri-style=host" in aws
    assert SECRET not in pb.settings_json(p, "a" * 32).decode()
    assert not any(SECRET in a for a in pb.pgbackrest("shop", "info") + [pb.archive_command("shop")])


def test_archiving_settings_and_the_fenced_archive_command():
    w = pb.wanted_settings("shop", 1)
    assert w["archive_mode"] == "on" and w["archive_timeout"] == "1" and w["wal_level"] == "replica"
    assert w["archive_command"] == "/usr/bin/python3 -I -B /usr/local/lib/fdeploy/backup-agent pgbackrest-archive-push --app shop --set WAL=%p"


@pytest.mark.parametrize("fresh,info,step", [
    (True, {"status": {"code": 0}, "backup": [{"label": "x"}]}, "restore"),   # server loss: restore from the repository
    (True, None, "create"),                                                    # a first deploy
    (False, None, "create"),
    (False, {"status": {"code": 2}, "backup": []}, "backup"),                  # a stanza without a backup (a crash after stanza-create)
    (False, {"status": {"code": 0}, "backup": [{"label": "x"}]}, "keep"),      # the server that has its data: never a restore
])
def test_what_a_deploy_does_with_the_repository(fresh, info, step):
    assert pb.plan(fresh, info) == step


def test_info_backup_type_and_status_lines():
    rows = json.dumps([{"name": "shop", "status": {"code": 0}, "backup": [
        {"label": "F1", "type": "full", "timestamp": {"stop": 1000}}, {"label": "D1", "type": "diff", "timestamp": {"stop": 2000}}]}])
    info = pb.parse_info(rows, "shop")
    assert info and pb.parse_info(json.dumps([{"name": "shop", "status": {"code": 1}}]), "shop") is None
    assert pb.backup_type(info, 1000 + 86400) == "diff" and pb.backup_type(info, 1000 + 8 * 86400) == "full"
    assert pb.backup_type(None, 5) == "full"
    lines, out = pb.status_lines(info, {"last_archived_wal": "000000010000000000000005", "last_archived_epoch": "2100.5"}, 2102)
    assert lines[0].startswith("last backup D1 (diff), 102 s ago; 2 kept") and out["archiveAgeSeconds"] == 1.5
    lines, out = pb.status_lines(None, {"last_archived_epoch": "10", "last_failed_epoch": "20", "last_failed_wal": "X"}, 30)
    assert lines[0] == "NO BACKUP in the repository yet" and out["archiveFailing"]


def test_one_backup_per_database_server():
    assert pb.other_app(b'{"app": "blog"}', "shop") == "blog"
    assert pb.other_app(b'{"app": "shop"}', "shop") is None and pb.other_app(None, "shop") is None


def test_timestamps_and_units():
    assert ops.check_timestamp("2026-12-05T07:00:00.25Z") == "2026-12-05 07:00:00.25+00"
    with pytest.raises(AgentError, match="expected a UTC time"):
        ops.check_timestamp("yesterday; rm -rf /")
    units = pb.render_units("shop", pb.check_params(PARAMS))
    assert "User=postgres" in units[pb.UNITS["backup"]] and "pg-backup-run --app shop" in units[pb.UNITS["backup"]]
    assert "OnUnitActiveSec=86400s" in units[pb.UNITS["verify-timer"]]
    assert pb.UNITS["verify"] not in pb.render_units("shop", pb.check_params(dict(PARAMS, VERIFY_EVERY="")))


class Crash(Exception):
    """The agent killed at this command (a lost SSH session, a reboot)."""


class Server:
    """pg_lsclusters, psql (fresh or not), runuser pgbackrest, systemctl, apt: what ran, in order."""

    def __init__(self, fresh, info):
        self.fresh, self.info, self.ran, self.state, self.crash_at = fresh, info, [], "online", None
        self.settings = {"archive_mode": "off", "archive_command": "(disabled)", "archive_timeout": "0", "wal_level": "replica"}

    def __call__(self, argv, merge_output=False, input=None, umask=-1):
        self.ran.append(" ".join(argv))
        if self.crash_at and self.crash_at in " ".join(argv) + " " + (input or ""):
            raise Crash(self.crash_at)
        out = ""
        if argv[0] == "pg_lsclusters":
            out = "15 main 5432 %s postgres /var/lib/postgresql/15/main x\n" % self.state
        elif argv[0] == "systemctl" and argv[1] in ("stop", "start", "restart") and argv[2].startswith("postgresql@"):
            self.state = "down" if argv[1] == "stop" else "online"
        elif "psql" in argv and self.state != "online":
            return subprocess.CompletedProcess(argv, 2, "", "psql: error: connection to server on socket failed")
        elif "psql" in argv:
            self.ran.append("SQL " + input)
            if "pg_database" in input:
                out = "0" if self.fresh else "1"
            elif input.startswith("SELECT name, setting"):
                out = "\n".join("%s|%s" % kv for kv in self.settings.items())
            elif "pg_is_in_recovery" in input:
                out = "f"
            elif input.startswith("SELECT setting FROM pg_settings WHERE name = 'archive_mode'"):
                out = self.settings["archive_mode"]
            elif input.startswith("ALTER SYSTEM RESET"):
                self.settings["archive_mode"] = "off"
        elif "pgbackrest" in argv and "info" in argv:
            out = json.dumps([self.info]) if self.info else "[]"
        return subprocess.CompletedProcess(argv, 0, out, "")


@pytest.fixture
def host_for(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "chown", lambda *a: None)
    monkeypatch.setattr(ops, "agent_copy", lambda host: False)
    monkeypatch.setattr(bl.Transport, "close", lambda self: None)

    def make(fresh, info):
        (tmp_path / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
        srv = Server(fresh, info)
        return Host(root=str(tmp_path), run=srv, which=lambda c: "/usr/bin/" + c, sleep=lambda s: None, user_ids=lambda n: (101, 104)), srv
    return make


def test_a_brand_new_server_restores_before_archiving_and_takes_no_new_stanza(host_for, tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "claim", lambda t, me, fresh, takeover, *a: ["lease: took over"] if fresh else [])
    host, srv = host_for(True, {"name": "shop", "status": {"code": 0}, "backup": [{"label": "F"}]})
    r = ops.pg_backup_deploy(host, PARAMS, print, 5)
    assert any(s.startswith("restored from the repository") for s in r["say"])
    order = [c for c in srv.ran if "restore" in c or c.startswith("systemctl stop") or c.startswith("systemctl start")]
    assert order[0] == "systemctl stop postgresql@15-main" and order[1].endswith(" restore") and "--delta" in order[1]
    assert order[2] == "systemctl start postgresql@15-main"
    # the recovery fetches WAL with the stack's config (pgBackRest's default config has no such stanza)
    assert '--recovery-option=restore_command=pgbackrest --config=/etc/fdeploy/postgres/pgbackrest.conf --stanza=shop archive-get %f "%p"' in order[1]
    assert not any("stanza-create" in c or "--type=full" in c for c in srv.ran)
    # once recovery is over, a reload: archive_timeout applies at once, not after the next checkpoint
    at = next(i for i, c in enumerate(srv.ran) if "pg_is_in_recovery" in c)
    assert any(c == "SQL SELECT pg_reload_conf();" for c in srv.ran[at:])
    # postgresql.auto.conf is the backup's: the server settings (listen address, pg_hba, TLS) set again after it
    at = next(i for i, c in enumerate(srv.ran) if c.endswith(" restore"))
    assert any(c.startswith("SQL ALTER SYSTEM") and "hba_file" in c for c in srv.ran[at:])
    conf = tmp_path / "etc/fdeploy/postgres/pgbackrest.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640 and SECRET in conf.read_text()
    assert not any(SECRET in c for c in srv.ran), "an S3 key on a command line"


def test_a_first_deploy_creates_the_stanza_and_a_full_backup_a_second_changes_nothing(host_for, monkeypatch):
    monkeypatch.setattr(bl, "claim", lambda *a: ["lease: claimed"])
    host, srv = host_for(False, None)
    assert ops.pg_backup_deploy(host, PARAMS, print, 5)["changed"]
    assert any("stanza-create" in c for c in srv.ran) and any("--type=full backup" in c for c in srv.ran)
    # every start of PostgreSQL ends with a reload (archive_timeout from the start), in place before the restart
    dropin = host.path(pb.DROPIN)
    assert "ExecStartPost=-/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i reload" in open(dropin).read()
    assert srv.ran.index("systemctl daemon-reload") < next(i for i, c in enumerate(srv.ran) if c.startswith("systemctl restart"))
    srv.settings = pb.wanted_settings("shop", 1)
    srv.info, srv.ran = {"name": "shop", "status": {"code": 0}, "backup": [{"label": "F"}]}, []
    assert not ops.pg_backup_deploy(host, PARAMS, print, 5)["changed"]
    assert not any("restore" in c or "backup" in c.split()[-1:] for c in srv.ran)


def test_a_deploy_the_lease_refuses_changes_nothing(host_for, tmp_path, monkeypatch):
    def refuse(*a):
        raise bl.Refused("the replica s3://backups/shop/pg belongs to another server: abc (host 10.0.0.6)")
    monkeypatch.setattr(bl, "claim", refuse)
    host, srv = host_for(False, None)
    with pytest.raises(AgentError, match="belongs to another server"):
        ops.pg_backup_deploy(host, PARAMS, print, 5)
    assert not (tmp_path / "etc/fdeploy/postgres/pgbackrest.conf").exists()
    assert not any("pgbackrest" in c or "apt" in c or "systemctl" in c for c in srv.ran)


def test_a_brand_new_server_that_cannot_reach_the_repository_stops(host_for, monkeypatch):
    def down(*a):
        raise bl.Unreachable("connection refused")
    monkeypatch.setattr(bl, "claim", down)
    host, _ = host_for(True, None)
    with pytest.raises(AgentError, match="an empty database must never replace the backups"):
        ops.pg_backup_deploy(host, PARAMS, print, 5)


def test_a_second_app_on_the_server_is_refused(host_for, tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "claim", lambda *a: [])
    host, _ = host_for(False, None)
    (tmp_path / "etc/fdeploy/postgres").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/fdeploy/postgres/backup.json").write_text('{"app": "blog"}')
    with pytest.raises(AgentError, match="app 'blog''s already"):
        ops.pg_backup_deploy(host, PARAMS, print, 5)


def test_the_archive_push_is_fenced(host_for, tmp_path, monkeypatch):
    host, srv = host_for(False, None)
    (tmp_path / "etc/fdeploy/postgres").mkdir(parents=True, exist_ok=True)
    (tmp_path / "var/lib/postgresql").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/postgres/backup.json").write_bytes(pb.settings_json(pb.check_params(PARAMS), "a" * 32))
    (tmp_path / "etc/fdeploy/postgres/pgbackrest.conf").write_text(pb.conf_text(pb.check_params(PARAMS), "/d"))
    monkeypatch.setattr(bl, "check", lambda t, me, now: ("other", "the replica now belongs to server b"))
    with pytest.raises(AgentError, match="belongs to another server") as e:
        ops.pg_archive_push(host, {"APP": "shop", "WAL": "pg_wal/000000010000000000000003"}, print, 5)
    assert e.value.exit_status == 3 and not any("archive-push" in c for c in srv.ran)
    monkeypatch.setattr(bl, "check", lambda t, me, now: ("ours", ""))
    ops.pg_archive_push(host, {"APP": "shop", "WAL": "pg_wal/000000010000000000000003"}, print, 5)
    assert srv.ran[-1].endswith("archive-push pg_wal/000000010000000000000003")
    with pytest.raises(AgentError, match="bad WAL"):
        ops.pg_archive_push(host, {"APP": "shop", "WAL": "/etc/shadow"}, print, 5)


def test_the_drills_wal_goes_to_its_own_folder():
    # archive-get writes %p relative to pg1-path: the drill's restore_command names its folder, not the live one
    assert pb.restore_command("shop", "/var/lib/postgresql/.fdeploy-drill/data") == (
        'pgbackrest --config=/etc/fdeploy/postgres/pgbackrest.conf --stanza=shop --pg1-path=/var/lib/postgresql/.fdeploy-drill/data '
        'archive-get %f "%p"')


def test_a_backup_on_a_server_another_app_uses_is_refused(host_for, tmp_path, monkeypatch):
    # the backup is the whole cluster's: a restore for shop would rewind blog's database too
    monkeypatch.setattr(bl, "claim", lambda *a: [])
    host, srv = host_for(False, None)
    (tmp_path / "etc/fdeploy/postgres/apps").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/postgres/apps/shop.json").write_text('{"app": "shop"}')
    (tmp_path / "etc/fdeploy/postgres/apps/blog.json").write_text('{"app": "blog"}')
    with pytest.raises(AgentError) as e:
        ops.pg_backup_deploy(host, PARAMS, print, 5)
    first = str(e.value).splitlines()[0]
    assert "'blog'" in first and "flask-deploy:database.host" in first and len(first) < 160
    assert "remove backup from this stack" in str(e.value)
    assert not (tmp_path / "etc/fdeploy/postgres/pgbackrest.conf").exists() and not any("pgbackrest" in c or "systemctl" in c for c in srv.ran)
    os.unlink(tmp_path / "etc/fdeploy/postgres/apps/blog.json")
    assert ops.pg_backup_deploy(host, PARAMS, print, 5)["changed"]   # its own entry alone: the backup goes on


def test_removing_the_backup_turns_archiving_off_and_removes_the_timers_and_keys(host_for, tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "claim", lambda *a: [])
    host, srv = host_for(False, None)
    ops.pg_backup_deploy(host, PARAMS, print, 5)
    srv.settings, srv.ran = dict(pb.wanted_settings("shop", 1)), []
    etc = tmp_path / "etc/fdeploy/postgres"
    (tmp_path / "etc/fdeploy/postgres/other").write_text("kept")
    assert pg_backup_delete.pg_backup_delete(host, {"APP": "shop"}, print, 5)["removed"]
    # archive_mode off needs a restart (with it on, an empty archive_command still keeps every WAL segment)
    reset = next(i for i, c in enumerate(srv.ran) if c.startswith("SQL ALTER SYSTEM RESET"))
    assert all("ALTER SYSTEM RESET %s;" % k in srv.ran[reset] for k in ("archive_mode", "archive_command", "archive_timeout", "wal_recycle"))
    assert srv.ran.index("systemctl restart postgresql@15-main") > reset
    assert any(c.startswith("systemctl disable --now") and pb.UNITS["timer"] in c and pb.UNITS["verify-timer"] in c for c in srv.ran)
    assert not any((tmp_path / ("etc/systemd/system/" + n)).exists() for n in pb.UNITS.values())
    assert not any(os.path.exists(host.path(p)) for p in (pb.CONF, pb.SETTINGS, pb.DROPIN))
    assert (etc / "backup-id").exists() and (etc / "other").exists()
    assert not any("pgbackrest" in c.split()[:5] or "repo" in c for c in srv.ran), "the repository is left as it is"
    srv.ran = []   # a re-run (after a crash) changes nothing more: no restart
    assert pg_backup_delete.pg_backup_delete(host, {"APP": "shop"}, print, 5)["removed"]
    assert not any(c.startswith("systemctl restart") for c in srv.ran)


def test_removing_the_backup_leaves_another_apps_alone(host_for, tmp_path):
    host, srv = host_for(False, None)
    (tmp_path / "etc/fdeploy/postgres").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/postgres/backup.json").write_text('{"app": "blog"}')
    assert not pg_backup_delete.pg_backup_delete(host, {"APP": "shop"}, print, 5)["removed"]
    assert srv.ran == [] and (tmp_path / "etc/fdeploy/postgres/backup.json").exists()


@pytest.mark.parametrize("crash_at,state", [
    ("systemctl stop", "online"),            # the marker written, PostgreSQL not stopped yet
    (" restore", "down"),                    # pgbackrest restore --delta half done: the data folder is neither
    ("systemctl start", "down"),
    ("pg_is_in_recovery", "online"),         # started, still replaying the archive
])
def test_an_interrupted_restore_is_run_again_and_nothing_starts_postgresql_before(host_for, tmp_path, monkeypatch, crash_at, state):
    monkeypatch.setattr(bl, "claim", lambda *a: [])
    monkeypatch.setattr(pg_server, "ensure_installed", lambda host, log: False)
    monkeypatch.setattr(pg_server, "ensure_certificate", lambda host, name, log: False)
    host, srv = host_for(True, {"name": "shop", "status": {"code": 0}, "backup": [{"label": "F"}]})
    marker = tmp_path / "etc/fdeploy/postgres/restore-pending"
    srv.crash_at = crash_at
    with pytest.raises(Crash):
        ops.pg_backup_deploy(host, PARAMS, print, 5)
    assert marker.exists() and srv.state == state
    # the server's next deploy: pg-install leaves PostgreSQL as it is, pg-app refuses to start it
    srv.crash_at, srv.ran, srv.fresh = None, [], False   # no longer fresh: part of the data is there
    pg_server.pg_install(host, {"NAME": "10.0.0.5"}, print, 5)
    assert not any(c.startswith("systemctl start") or c.startswith("SQL ALTER SYSTEM") for c in srv.ran) and srv.state == state
    if state == "down":
        with pytest.raises(AgentError, match="restore from the backup is pending"):
            pg_server.apply_settings(host, print)
    # PgBackup restores again, then the marker goes
    r = ops.pg_backup_deploy(host, PARAMS, print, 5)
    assert any(s.startswith("restored from the repository") for s in r["say"]) and not marker.exists() and srv.state == "online"
    assert any(c.endswith(" restore") and "--delta" in c for c in srv.ran)
    srv.ran = []   # done: the next deploy keeps the data
    ops.pg_backup_deploy(host, PARAMS, print, 5)
    assert not any(c.endswith(" restore") for c in srv.ran)


def test_an_interrupted_point_in_time_restore_is_run_again_to_the_same_point(host_for, tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "claim", lambda *a: [])
    host, srv = host_for(False, {"name": "shop", "status": {"code": 0}, "backup": [{"label": "F"}]})
    ops.pg_backup_deploy(host, PARAMS, print, 5)
    monkeypatch.setattr(bl.Transport, "read", lambda self: (None, ""))
    srv.crash_at = " restore"
    with pytest.raises(Crash):
        ops.pg_backup_restore(host, {"APP": "shop", "TIMESTAMP": "2026-12-05T07:00:00Z"}, print, 5)
    srv.crash_at, srv.ran = None, []
    ops.pg_backup_deploy(host, PARAMS, print, 5)
    again = [c for c in srv.ran if c.endswith(" restore")]
    assert len(again) == 1 and "--type=time --target=2026-12-05 07:00:00+00 --target-action=promote" in again[0]
    assert pb.pending_args(b'{"args": ["--target=x; rm -rf /"]}') == [] and pb.pending_args(None) is None


def test_the_lease_refusal_names_database_host_on_its_short_first_line(host_for, tmp_path, monkeypatch):
    other = "b" * 32
    monkeypatch.setattr(bl.Transport, "read", lambda self: (bl.Lease(other, "10.0.0.7", "2026-12-06T10:00:00Z"), "etag"))
    host, srv = host_for(False, None)
    with pytest.raises(AgentError) as e:
        ops.pg_backup_deploy(host, PARAMS, print, 5)
    first, rest = str(e.value).split("\n", 1)
    assert len(first) < 160 and "another server's (host 10.0.0.7)" in first and "flask-deploy:database.host" in first
    assert "server.host" not in str(e.value).replace("database.host", "")
    assert "point database.host (its host and hostKey) back at 10.0.0.7" in rest and "pulumi config set --path backup.takeover " + other in rest
    assert not (tmp_path / "etc/fdeploy/postgres/pgbackrest.conf").exists()


def test_a_point_in_time_restore_sets_the_archiving_settings_again(host_for, tmp_path, monkeypatch):
    # postgresql.auto.conf comes back as the backup had it: archive_timeout (backup.syncInterval) and wal_recycle as now
    monkeypatch.setattr(bl, "claim", lambda *a: [])
    monkeypatch.setattr(bl.Transport, "read", lambda self: (None, ""))
    host, srv = host_for(False, {"name": "shop", "status": {"code": 0}, "backup": [{"label": "F"}]})
    ops.pg_backup_deploy(host, dict(PARAMS, SYNC_INTERVAL="5s"), print, 5)
    assert json.loads((tmp_path / "etc/fdeploy/postgres/backup.json").read_text())["archive_timeout"] == 5
    srv.settings = dict(pb.wanted_settings("shop", 60), wal_recycle="on")   # what the backup had
    srv.ran = []
    ops.pg_backup_restore(host, {"APP": "shop", "TIMESTAMP": "2026-12-05T07:00:00Z"}, print, 5)
    at = next(i for i, c in enumerate(srv.ran) if c.endswith(" restore"))
    sql = [c for c in srv.ran[at:] if c.startswith("SQL ALTER SYSTEM")]
    assert any("ALTER SYSTEM SET archive_timeout = '5';" in c and "ALTER SYSTEM SET wal_recycle = 'off';" in c for c in sql), sql


def test_a_second_drill_at_once_is_refused_and_leaves_the_first_ones_folder(host_for, tmp_path, monkeypatch):
    import fcntl
    host, srv = host_for(False, None)
    (tmp_path / "etc/fdeploy/postgres").mkdir(parents=True)
    (tmp_path / "etc/fdeploy/postgres/backup.json").write_bytes(pb.settings_json(pb.check_params(PARAMS), "a" * 32))
    work = tmp_path / pb.DRILL.lstrip("/")
    (work / "data").mkdir(parents=True)
    (work / "data/PG_VERSION").write_text("15")   # the first drill's restore, under way
    monkeypatch.setattr(os, "geteuid", lambda: 110)
    monkeypatch.setattr(os, "chdir", lambda p: None)
    first = os.open(str(work) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(first, fcntl.LOCK_EX)
    os.write(first, b"2026-12-07T13:00:00Z")
    try:
        with pytest.raises(AgentError, match=r"a restore drill is running since 2026-12-07T13:00:00Z"):
            ops.pg_backup_drill(host, {"APP": "shop"}, print, 5)
    finally:
        os.close(first)
    assert (work / "data/PG_VERSION").exists() and srv.ran == []
    # the first one over: the next drill takes the lock
    monkeypatch.setattr(ops, "_drill", lambda host, app, log: {"summary": "ok"})
    assert ops.pg_backup_drill(host, {"APP": "shop"}, print, 5) == {"summary": "ok"}
