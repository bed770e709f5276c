"""pgBackRest for the PostgreSQL server the stack manages (issue 33): what the steps decide and write,
pure where it can be (pytest: tests/python/test_agent_pg_backup.py). The verbs are pg_backup_ops.py.

One repository (an S3-compatible target: Debian 12's pgBackRest 2.45 has no SFTP) per database
server: archive_command pushes every WAL segment (archive_timeout = backup.syncInterval bounds what a
server loss loses), a timer takes the full/differential backups, retention by time (backup.retention).
The repository holds the same lease as Litestream's replica (backup_lease.py: <path>/fdeploy-owner,
conditional S3 writes): only the server that owns it pushes WAL or takes backups; a brand-new server
(no app database) restores from it and takes it over; a deploy to an old server that comes back is refused.

Files (ETC = /etc/fdeploy/postgres): pgbackrest.conf (root:postgres 0640: the S3 keys, read by
pgBackRest and the fence as postgres, never on a command line), backup.json (root:postgres 0640: the
target and this server's id, no secret), backup-id (0644)."""
import configparser
import json
import math
import re
from typing import Any, Dict, List, Optional, Tuple

from . import backup_lease as bl
from .app import check_name
from .errors import AgentError

ETC = "/etc/fdeploy/postgres"
CONF = ETC + "/pgbackrest.conf"
SETTINGS = ETC + "/backup.json"
ID = ETC + "/backup-id"
BACKUP_AGENT = "/usr/local/lib/fdeploy/backup-agent"   # root's copy of the agent (backup_install.agent_copy)
FENCE_CACHE = "/var/lib/postgresql/.fdeploy-fence"     # postgres's: when the lease was last seen to be ours
DRILL = "/var/lib/postgresql/.fdeploy-drill"           # postgres's: the restore drill's folder (and DRILL.lock)
FULL_EVERY_DAYS = 7
UNITS = {"backup": "fdeploy-pg-backup.service", "timer": "fdeploy-pg-backup.timer",
         "verify": "fdeploy-pg-backup-verify.service", "verify-timer": "fdeploy-pg-backup-verify.timer"}
DURATION = re.compile(r"(\d+)(ms|s|m|h)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(value: object, key: str) -> float:
    """A Go-style duration (1s, 500ms, 72h, 1h30m) in seconds."""
    text = value if isinstance(value, str) else ""
    parts = DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise AgentError("bad %s %r (flask-deploy:%s: a duration like 1s, 10m or 72h)" % (key, value, key))
    return sum(int(n) * SECONDS[u] for n, u in parts)


def _text(params: Dict[str, Any], key: str, pattern: str, what: str, optional: bool = False) -> str:
    v = params.get(key, "")
    if (v == "" and optional) or (isinstance(v, str) and re.fullmatch(pattern, v)):
        return v
    raise AgentError("bad %s %r for %s" % (what, v, key))


def check_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """The deploy step's settings, checked before anything on the server changes."""
    app = check_name(params.get("APP"))
    p = {
        "app": app,
        "host": _text(params, "HOST", r"[A-Za-z0-9.:-]{1,253}", "flask-deploy:database.host.host"),
        "bucket": _text(params, "R_BUCKET", r"[a-z0-9][a-z0-9.-]{1,62}", "flask-deploy:backup.replica: s3://bucket[/path]"),
        "path": _text(params, "R_PATH", r"[A-Za-z0-9._/-]{1,512}", "flask-deploy:backup.replica: s3://bucket[/path]", optional=True).strip("/"),
        "endpoint": _text(params, "ENDPOINT", r"https://[A-Za-z0-9.-]+(:\d{1,5})?/?", "flask-deploy:backup.endpoint: an https:// URL", optional=True),
        "region": _text(params, "REGION", r"[a-z0-9-]{1,32}", "flask-deploy:backup.region", optional=True) or "us-east-1",
        "takeover": _text(params, "TAKEOVER", r"[0-9a-f]{32}", "flask-deploy:backup.takeover: 32 hex digits", optional=True),
        "retention_days": max(1, math.ceil(seconds(params.get("RETENTION", "72h"), "backup.retention") / 86400)),
        "archive_timeout": max(1, int(round(seconds(params.get("SYNC_INTERVAL", "1s"), "backup.syncInterval")))),
        "verify_every": int(seconds(params["VERIFY_EVERY"], "backup.verifyEvery")) if params.get("VERIFY_EVERY") else 0,
    }
    try:
        c = json.loads(params.get("CREDENTIALS") or "{}")
        key, secret = c["accessKeyId"], c["secretAccessKey"]
    except (ValueError, KeyError, TypeError):
        raise AgentError("could not read the backup credentials (flask-deploy:backupSecrets: accessKeyId and secretAccessKey)")
    for k, v in (("accessKeyId", key), ("secretAccessKey", secret)):
        if not isinstance(v, str) or not re.fullmatch(r"[\x21-\x7e]{1,256}", v):
            raise AgentError("bad S3 credential %s: expected 1-256 printable characters, no spaces (flask-deploy:backupSecrets.%s)" % (k, k))
    p["key"], p["secret"] = key, secret
    return p


def endpoint_parts(p: Dict[str, Any]) -> Tuple[str, int, str]:
    """(host, port, uri style) of the S3 endpoint: AWS by region (host style), else the given one (path style)."""
    if not p["endpoint"]:
        return "s3.%s.amazonaws.com" % p["region"], 443, "host"
    m = re.fullmatch(r"https://([A-Za-z0-9.-]+)(?::(\d+))?/?", p["endpoint"])
    return m.group(1), int(m.group(2) or 443), "path"


def conf_text(p: Dict[str, Any], pgdata: str) -> str:
    """pgbackrest.conf: the repository (with the S3 keys: the file is root:postgres 0640) and the stanza."""
    host, port, style = endpoint_parts(p)
    lines = ["# Managed by flask-deploy (fdeploy-agent pg-backup-deploy). Do not edit: the next deploy rewrites it.",
             "[global]", "repo1-type=s3", "repo1-path=/%s" % p["path"], "repo1-s3-bucket=%s" % p["bucket"],
             "repo1-s3-endpoint=%s" % host, "repo1-storage-port=%d" % port, "repo1-s3-region=%s" % p["region"],
             "repo1-s3-uri-style=%s" % style, "repo1-s3-key=%s" % p["key"], "repo1-s3-key-secret=%s" % p["secret"],
             "repo1-retention-full-type=time", "repo1-retention-full=%d" % p["retention_days"],
             "compress-type=lz4", "start-fast=y", "process-max=2", "log-level-console=warn", "log-level-file=info",
             "", "[%s]" % stanza(p["app"]), "pg1-path=%s" % pgdata, "pg1-socket-path=/var/run/postgresql", ""]
    return "\n".join(lines)


def stanza(app: str) -> str:
    return app


def settings_json(p: Dict[str, Any], server_id: str) -> bytes:
    """backup.json: what the fence and the units read, and the archiving settings a restore sets again (no secret)."""
    return (json.dumps({"app": p["app"], "host": p["host"], "id": server_id, "bucket": p["bucket"], "path": p["path"],
                        "endpoint": p["endpoint"], "region": p["region"], "archive_timeout": p["archive_timeout"]}, sort_keys=True) + "\n").encode()


def target_of(s: Dict[str, Any]) -> bl.Target:
    return bl.Target(kind="s3", path=s["path"], bucket=s["bucket"], endpoint=(s["endpoint"] or "").rstrip("/"), region=s["region"])


def credentials_of(conf: str) -> bl.Credentials:
    """The S3 keys, from pgbackrest.conf's text (the fence reads them as postgres: no other copy)."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(conf)
    g = cp["global"] if cp.has_section("global") else {}
    return bl.Credentials(access_key_id=g.get("repo1-s3-key", ""), secret_access_key=g.get("repo1-s3-key-secret", ""))


def pgbackrest(app: str, *args: str, as_root: bool = True) -> List[str]:
    """A pgBackRest command with the stack's config (no secret on the line), as the postgres user: from root
    through runuser (AS_ROOT), else the agent runs as postgres already (archive_command, the units)."""
    return (["runuser", "-u", "postgres", "--"] if as_root else []) + ["pgbackrest", "--config=" + CONF, "--stanza=" + stanza(app)] + list(args)


def archive_command(app: str) -> str:
    """archive_command: the fenced push (the agent as postgres, then pgbackrest archive-push). pgBackRest's
    backup refuses an archive_command without the word pgbackrest in it: the verb's name has it."""
    return "/usr/bin/python3 -I -B %s pgbackrest-archive-push --app %s --set WAL=%%p" % (BACKUP_AGENT, app)


def restore_command(app: str, pgdata: str = "") -> str:
    """restore_command after a restore: archive-get with the stack's config (pgBackRest's own would use its default
    config). PGDATA: a restore into another folder than the config's pg1-path (the drill): archive-get writes %p
    relative to pg1-path, so without it the drill's WAL would land in the live server's pg_wal."""
    return 'pgbackrest --config=%s --stanza=%s%s archive-get %%f "%%p"' % (CONF, stanza(app), " --pg1-path=" + pgdata if pgdata else "")


# PostgreSQL 15's checkpointer, started before the startup process has finished, can compute its first sleep
# while recovery is still "in progress": it then skips archive_timeout and sleeps checkpoint_timeout (5 min)
# unless woken, so a server (re)started by a deploy, a restore or a boot may close no WAL segment for minutes
# and a server loss loses all of them. A reload once the server is up wakes it (seen on the test servers:
# no segment switch in 30 s of writes after a restart, one a second after pg_reload_conf()).
DROPIN = "/etc/systemd/system/postgresql@.service.d/fdeploy-archive-timeout.conf"
DROPIN_TEXT = ("# Managed by flask-deploy (fdeploy-agent pg-backup-deploy): a reload once PostgreSQL is up, so that\n"
               "# archive_timeout applies from the start (pg_backup.py says why).\n"
               "[Service]\nExecStartPost=-/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i reload\n")


def wanted_settings(app: str, archive_timeout: int) -> Dict[str, str]:
    """The server settings WAL archiving needs (ALTER SYSTEM), as pg_settings shows them."""
    # wal_recycle off: a segment closed early by archive_timeout is zero-filled past its end, not a recycled
    # segment's old bytes, so it compresses to almost nothing and the push keeps up at one segment a second
    return {"archive_mode": "on", "archive_command": archive_command(app), "archive_timeout": str(archive_timeout), "wal_level": "replica",
            "wal_recycle": "off"}


RESTART_SETTINGS = ("archive_mode", "wal_level")


def other_app(existing: Optional[bytes], app: str) -> Optional[str]:
    """The app whose backup this server's repository is already (one per server: archiving is the server's)."""
    if not existing:
        return None
    try:
        owner = json.loads(existing).get("app")
    except ValueError:
        return None
    return owner if isinstance(owner, str) and owner != app else None


def shared_refusal(app: str, apps: List[str]) -> Optional[str]:
    """pgBackRest backs up and restores the whole cluster: a backup only on a server no other app's database is on."""
    others = sorted(set(a for a in apps if a != app))
    if not others:
        return None
    names = ", ".join("'%s'" % a for a in others)
    return ("backup refused: app %s also uses this database server (flask-deploy:database.host); pgBackRest covers the whole server\n"
            "a restore for '%s' would rewind %s too. Give this app a database server of its own (database.host), or remove backup from "
            "this stack. An app no longer deployed there: drop its database and remove %s/apps/<app>.json" % (names, app, names, ETC))


def plan(fresh: bool, info: Optional[Dict[str, Any]], pending: bool = False) -> str:
    """What the deploy does with the repository: restore (a brand-new server, and the repository has a
    backup: server loss; or a restore was interrupted: PENDING), create (no stanza yet: stanza-create,
    then a first full backup), backup (a stanza without any backup: a first full backup), or keep."""
    backups = (info or {}).get("backup") or []
    has_stanza = bool(info) and (info.get("status") or {}).get("code") in (0, 2)   # 2: no valid backups
    if (fresh and backups) or pending:
        return "restore"
    if not has_stanza:
        return "create"
    return "keep" if backups else "backup"


PENDING_ARG = re.compile(r"--type=time|--target=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?\+00|--target-action=promote")


def pending_args(raw: Optional[bytes]) -> Optional[List[str]]:
    """The restore-pending marker's pgbackrest restore arguments (the interrupted restore's: [] the newest,
    else a point in time), None without a marker; a marker not ours: the newest."""
    if raw is None:
        return None
    try:
        args = json.loads(raw).get("args")
    except (ValueError, AttributeError):
        return []
    return args if isinstance(args, list) and all(isinstance(a, str) and PENDING_ARG.fullmatch(a) for a in args) else []


def parse_info(stdout: str, app: str) -> Optional[Dict[str, Any]]:
    """pgbackrest info --output=json: the stanza's entry, None when the repository holds none."""
    try:
        rows = json.loads(stdout or "[]")
    except ValueError:
        return None
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("name") == stanza(app):
            code = (row.get("status") or {}).get("code")
            return row if code in (0, 2) else None   # 1: missing stanza path, 3+: errors
    return None


def backup_type(info: Optional[Dict[str, Any]], now: float) -> str:
    """full when the newest full backup is older than FULL_EVERY_DAYS (or there is none), else diff."""
    fulls = [b for b in (info or {}).get("backup") or [] if b.get("type") == "full"]
    newest = max((b.get("timestamp", {}).get("stop", 0) for b in fulls), default=None)
    return "full" if newest is None or now - newest > FULL_EVERY_DAYS * 86400 else "diff"


def status_lines(info: Optional[Dict[str, Any]], archiver: Dict[str, str], now: float) -> Tuple[List[str], Dict[str, Any]]:
    """What fdeploy status shows: the last backup (type, age), the newest archived WAL and its age
    (the recovery point if the server were lost now), failures."""
    backups = (info or {}).get("backup") or []
    out: Dict[str, Any] = {"backups": len(backups)}
    lines = []
    if backups:
        last = max(backups, key=lambda b: b.get("timestamp", {}).get("stop", 0))
        stop = last.get("timestamp", {}).get("stop", 0)
        out.update(lastBackup=last.get("label", ""), lastBackupType=last.get("type", ""), lastBackupAgeSeconds=int(now - stop))
        lines.append("last backup %s (%s), %d s ago; %d kept" % (last.get("label", ""), last.get("type", ""), now - stop, len(backups)))
    else:
        lines.append("NO BACKUP in the repository yet")
    archived = float(archiver.get("last_archived_epoch") or 0)
    failed = float(archiver.get("last_failed_epoch") or 0)
    if archived:
        out.update(lastArchivedWal=archiver.get("last_archived_wal", ""), archiveAgeSeconds=round(now - archived, 1))
        lines.append("WAL archived up to %s, %.1f s ago" % (archiver.get("last_archived_wal", ""), now - archived))
    if failed > archived:
        out["archiveFailing"] = True
        lines.append("ARCHIVING FAILS since %.0f s: %s (the server's log says why)" % (now - failed, archiver.get("last_failed_wal", "")))
    return lines, out


def render_units(app: str, p: Dict[str, Any]) -> Dict[str, str]:
    """The scheduled backup (daily: full weekly, else differential) and the drill (backup.verifyEvery), as postgres."""
    head = "# Managed by flask-deploy (fdeploy-agent pg-backup-deploy). Do not edit: the next deploy rewrites it.\n"
    run = lambda verb: "/usr/bin/python3 -I -B %s %s --app %s" % (BACKUP_AGENT, verb, app)   # noqa: E731
    common = "User=postgres\nGroup=postgres\nNoNewPrivileges=yes\nProtectSystem=full\nProtectHome=yes\n"
    out = {
        UNITS["backup"]: head + "[Unit]\nDescription=pgBackRest backup of the PostgreSQL server (%s's repository)\nAfter=postgresql.service\n\n"
        "[Service]\nType=oneshot\n%sExecStart=%s\n" % (app, common, run("pg-backup-run")),
        UNITS["timer"]: head + "[Unit]\nDescription=Daily pgBackRest backup (full weekly, else differential)\n\n"
        "[Timer]\nOnCalendar=daily\nPersistent=true\nRandomizedDelaySec=1800\n\n[Install]\nWantedBy=timers.target\n",
    }
    every = p.get("verify_every") or 0
    if every:
        out[UNITS["verify"]] = (head + "[Unit]\nDescription=Restore drill of the pgBackRest repository (%s)\n\n[Service]\nType=oneshot\n"
                                "%sExecStart=%s\n" % (app, common, run("pg-backup-drill")))
        out[UNITS["verify-timer"]] = (head + "[Unit]\nDescription=Restore drill of the pgBackRest repository, every %ds\n\n[Timer]\n"
                                      "OnBootSec=%ds\nOnUnitActiveSec=%ds\nRandomizedDelaySec=60\n\n[Install]\nWantedBy=timers.target\n"
                                      % (every, every, every))
    return out
