"""Offsite backups (Litestream): the decisions of the backup step (backup_ops.py backup-deploy runs
them in this order, inside its deploy lock), in typed Python.

  backup-claim      (root, first): every setting checked, then the replica's lease decided
                    (backup_lease.claim) before anything on the server changes
  backup-start      (root, after the installs): the credentials (root-only), Litestream's config,
                    the run conf, the pinned host key and the units written; the restore of a new
                    server and what it means for the deploy
  backup-check      (as the app user): the fence (backup_unit.py backup-run: every FENCE_EVERY seconds)
  backup-status     (as the app user): the lease, each database's replication lag

Files (their formats are kept: a server deployed before upgrades in place):
  /etc/fdeploy/<app>/backup-sftp-key | backup.env    the credentials (root, 0600)
  /etc/fdeploy/<app>.litestream.yml                  Litestream's config (0644, no secret)
  /etc/fdeploy/<app>.backup.conf                     the run conf (0644, shell assignments, no secret)
  /etc/fdeploy/<app>.backup-known-hosts              sftp: the pinned host key
  /etc/fdeploy/<app>.backup-id                       this server's id in the lease (random, once)
Credentials arrive as JSON on stdin (CREDENTIALS) and never reach a command line or a log."""
import datetime
import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import app as apps
from . import backup_lease as bl
from . import units
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host
from .lock import LOCK_DIR

Log = Callable[[str], None]
CONF_KEYS = ("ME", "HOST", "KIND", "LITESTREAM", "CONFIG", "R_HOST", "R_PORT", "R_USER", "R_PATH", "KNOWN_HOSTS",
             "R_BUCKET", "ENDPOINT", "REGION")


def _check(params: Dict[str, Any], key: str, pattern: str, what: str, hint: str = "", optional: bool = False) -> str:
    """PARAMS[KEY] when it matches PATTERN, else an error naming the setting, the value and the form."""
    v = params.get(key, "")
    v = "" if v is None else str(v)
    if (optional and v == "") or re.fullmatch(pattern, v):
        return v
    raise AgentError("bad %s %r%s" % (what, v, " (%s)" % hint if hint else ""))


def check_params(params: Dict[str, Any]) -> Tuple[bl.Target, List[str]]:
    """Every setting of the backup step, before anything changes: the target and the databases."""
    _check(params, "VERSION", r"v[0-9]+\.[0-9]+\.[0-9]+", "Litestream version", "vX.Y.Z")
    _check(params, "SHA256", r"[0-9a-f]{64}", "sha256")
    if params.get("UPLOAD"):
        _check(params, "UPLOAD", r"litestream-[0-9a-f]{12}", "upload")
    else:
        _check(params, "URL", r"https://[A-Za-z0-9./_-]+", "Litestream URL")
    _check(params, "KIND", r"sftp|s3", "replica kind")
    dbs = str(params.get("DATABASES", "")).split()
    for d in dbs:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", d) or ".." in d:
            raise AgentError("bad database path %r (flask-deploy:backup.databases: relative to shared/, e.g. instance/extra.sqlite3)" % d)
    if params.get("VERIFY_EVERY"):
        _check(params, "VERIFY_EVERY", r"[1-9][0-9]{0,5}[smh]", "verify interval", "flask-deploy:backup.verifyEvery: e.g. 24h")
    _check(params, "HOST", r"[A-Za-z0-9.:_-]{0,253}", "server host")
    _check(params, "TAKEOVER", r"([0-9a-f]{32})?", "backup.takeover", "expected the 32 hex digits of a server id, as a refused deploy printed it")
    return target_of(params, ""), dbs


def target_of(p: Dict[str, Any], known_hosts: str) -> bl.Target:
    g = lambda k: "" if p.get(k) is None else str(p.get(k, ""))   # noqa: E731
    if g("KIND") == "sftp":
        if not (re.fullmatch(r"[A-Za-z0-9.-]+", g("R_HOST")) and re.fullmatch(r"[0-9]{1,5}", g("R_PORT"))
                and re.fullmatch(r"[a-z_][a-z0-9_.-]*", g("R_USER")) and re.fullmatch(r"/[A-Za-z0-9._/-]*", g("R_PATH"))):
            raise AgentError("bad sftp target (flask-deploy:backup.replica: sftp://user@host[:port]/absolute/path)")
        if "R_HOSTKEY" in p and not re.fullmatch(r"[a-z0-9-]+ [A-Za-z0-9+/=]+", g("R_HOSTKEY")):
            raise AgentError("bad target host key (flask-deploy:backup.hostKey: e.g. ssh-ed25519 AAAA…)")
        return bl.Target("sftp", g("R_PATH"), host=g("R_HOST"), port=g("R_PORT"), user=g("R_USER"), known_hosts=known_hosts)
    if g("KIND") != "s3":
        raise AgentError("bad replica kind %r (sftp or s3)" % g("KIND"))
    if not (re.fullmatch(r"[a-z0-9.-]+", g("R_BUCKET")) and re.fullmatch(r"[A-Za-z0-9._/-]*", g("R_PATH"))
            and re.fullmatch(r"(https?://[A-Za-z0-9.:-]+/?)?", g("ENDPOINT")) and re.fullmatch(r"[a-z0-9-]*", g("REGION"))):
        raise AgentError("bad s3 target (flask-deploy:backup.replica s3://bucket[/path], backup.endpoint, backup.region)")
    return bl.Target("s3", g("R_PATH"), bucket=g("R_BUCKET"), endpoint=g("ENDPOINT"), region=g("REGION"))


def known_hosts_text(p: Dict[str, Any]) -> str:
    host = p["R_HOST"] if str(p.get("R_PORT")) == "22" else "[%s]:%s" % (p["R_HOST"], p["R_PORT"])
    return "%s %s\n" % (host, p["R_HOSTKEY"])


def paths(app: str) -> Dict[str, str]:
    return {"conf": "/etc/fdeploy/%s.backup.conf" % app, "config": "/etc/fdeploy/%s.litestream.yml" % app,
            "id": "/etc/fdeploy/%s.backup-id" % app, "known_hosts": "/etc/fdeploy/%s.backup-known-hosts" % app,
            "sftp": "/etc/fdeploy/%s/backup-sftp-key" % app, "s3": "/etc/fdeploy/%s/backup.env" % app}


def server_id(host: Host, app: str) -> str:
    """This server's id in the lease: random, made once per server and app (0644: no secret)."""
    f = host.path(paths(app)["id"])
    raw = (read_regular(f) or b"").decode("ascii", "replace").strip()
    if not re.fullmatch(r"[0-9a-f]{32}", raw):
        raw = secrets.token_hex(16)
        write_atomic(f, raw.encode(), 0o644)
    return raw


def run_conf_text(host: Host, p: Dict[str, Any], known_hosts: str) -> str:
    """What the backup units need (no secret), as shell assignments (the format servers deployed before have)."""
    app = p["APP"]
    values = {"ME": server_id(host, app), "HOST": p.get("HOST", ""), "KIND": p["KIND"],
              "LITESTREAM": "/usr/local/lib/fdeploy/litestream-%s/litestream" % p["VERSION"], "CONFIG": paths(app)["config"],
              "R_HOST": p.get("R_HOST", ""), "R_PORT": p.get("R_PORT", ""), "R_USER": p.get("R_USER", ""), "R_PATH": p.get("R_PATH", ""),
              "KNOWN_HOSTS": known_hosts, "R_BUCKET": p.get("R_BUCKET", ""), "ENDPOINT": p.get("ENDPOINT", ""), "REGION": p.get("REGION", "")}
    return "".join("%s=%s\n" % (k, shlex.quote(str(values[k]))) for k in CONF_KEYS)


def read_run_conf(host: Host, app: str) -> Dict[str, str]:
    raw = read_regular(host.path(paths(app)["conf"]))
    if raw is None:
        raise AgentError("app '%s' has no offsite backup configured on this server (%s); deploy with backup.replica set" % (app, paths(app)["conf"]))
    conf: Dict[str, str] = {}
    for line in raw.decode().splitlines():
        k, sep, v = line.partition("=")
        if sep and k in CONF_KEYS:
            conf[k] = " ".join(shlex.split(v))
    return conf


def credentials_text(kind: str, creds: Any) -> str:
    """The credentials file's content: the SSH key, or the S3 keys as an EnvironmentFile."""
    try:
        c = json.loads(creds) if isinstance(creds, str) else creds
        if kind == "sftp":
            key = c["sftpKey"]
            if not isinstance(key, str) or "\0" in key:
                raise ValueError
            return key
        out = ""
        for k, n in (("accessKeyId", "FDEPLOY_BACKUP_ACCESS_KEY_ID"), ("secretAccessKey", "FDEPLOY_BACKUP_SECRET_ACCESS_KEY")):
            v = c[k]
            if not isinstance(v, str) or any(ch in v for ch in "\r\n\0\"\\"):
                raise AgentError("bad S3 credential %s: a quote, backslash or newline (flask-deploy:backupSecrets.%s)" % (k, k))
            out += '%s="%s"\n' % (n, v)
        return out
    except AgentError:
        raise
    except (ValueError, KeyError, TypeError):
        raise AgentError("could not read the backup credentials (flask-deploy:backupSecrets: sftpKey for sftp, "
                         "accessKeyId and secretAccessKey for s3)")


def _creds_from(kind: str, text: str, folder: str) -> bl.Credentials:
    """Credentials for the lease's transport from the credentials file's TEXT (a key goes to a
    0600 file in FOLDER, which must be private)."""
    if kind == "sftp":
        key = os.path.join(folder, "sftp-key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return bl.Credentials(sftp_key=key)
    env = dict(re.findall(r'^([A-Z_]+)="(.*)"$', text, re.M))
    return bl.Credentials(access_key_id=env.get("FDEPLOY_BACKUP_ACCESS_KEY_ID", ""),
                          secret_access_key=env.get("FDEPLOY_BACKUP_SECRET_ACCESS_KEY", ""))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_claim(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (backup-deploy, as root, inside its deploy lock, before anything changes). Result:
    fresh (no database here: it restores from the replica), say (lines for the deploy's output).
    Another server's replica: refused, naming both servers
    and backup.takeover; an unreachable target: refused on a fresh server (it could not restore),
    else a warning (the unit's fence decides later)."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    target, _ = check_params(params)
    text = credentials_text(target.kind, params.get("CREDENTIALS"))
    fresh = not os.path.lexists(host.path(app.root + "/shared/db/app.sqlite3"))
    me = bl.Me(server_id(host, app.name), str(params.get("HOST", "")))
    own_dir(host.path(LOCK_DIR), 0o700)
    folder = tempfile.mkdtemp(prefix="backup-claim.", dir=host.path(LOCK_DIR))   # root 0700, in /run: never on disk
    try:
        if target.kind == "sftp":
            kh = os.path.join(folder, "known_hosts")
            with open(kh, "w") as f:
                f.write(known_hosts_text(params))
            target = bl.Target(**dict(target.__dict__, known_hosts=kh))
        t = bl.Transport(host, target, _creds_from(target.kind, text, folder))
        try:
            say = bl.claim(t, me, fresh, str(params.get("TAKEOVER") or ""), _now)
        except bl.Refused as e:
            raise AgentError("backup of '%s' (flask-deploy:backup.replica): %s" % (app.name, e))
        except bl.Unreachable as e:
            why = str(e).replace("\n", " ")
            if fresh:
                raise AgentError("could not restore from the replica (%s, flask-deploy:backup.replica): %s\nthe deploy stops so that a fresh, "
                                 "empty database never replaces the backups. Fix the target and deploy again" % (target.name(), why[:300]))
            say = ["warning: backup of '%s': the replica cannot be reached to claim it for this server; replication retries and catches "
                   "up when the target answers, if the replica is still this server's (%s)" % (app.name, why[:200])]
        finally:
            t.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"fresh": fresh, "say": say}


BACKUP_AGENT = "/usr/local/lib/fdeploy/backup-agent"   # root's copy of the agent (backup_install.py)
OLD_RUN = "/usr/local/lib/fdeploy/backup-run.sh"   # the units' program before the agent's backup-run


def as_app_argv(app: str, verb: str, **params: str) -> List[str]:
    """The command line of VERB of backup_unit.py, as the units and transient runs start it (as the app user)."""
    return ["/usr/bin/python3", "-I", "-B", BACKUP_AGENT, verb, "--app", app] + [a for k, v in sorted(params.items()) for a in ("--set", "%s=%s" % (k, v))]


HEADER = "# Managed by flask-deploy (fdeploy-agent backup-start). Do not edit: the next deploy rewrites it.\n"


def unit_names(app: str) -> Dict[str, str]:
    return {"backup": "fdeploy-%s-backup.service" % app, "restore": "fdeploy-%s-restore.service" % app,
            "verify": "fdeploy-%s-backup-verify.service" % app, "timer": "fdeploy-%s-backup-verify.timer" % app}


def render_units(app: apps.App, p: Dict[str, Any]) -> Dict[str, str]:
    """The backup units: replication, the restore of a new server, the drill (backup.verifyEvery:
    the verify service and its timer, else neither). All run as the app user in the app's one
    sandbox (the network open: Litestream reaches the target), the credentials from systemd."""
    kind, n, f = p["KIND"], unit_names(app.name), paths(app.name)
    common = "User=%s\nGroup=%s\n%s\n%s" % (app.user, app.user, "LoadCredential=sftp-key:%s" % f["sftp"] if kind == "sftp"
                                            else "EnvironmentFile=%s" % f["s3"], units.hardening(app.root))
    bin_ = "/usr/local/lib/fdeploy/litestream-%s/litestream" % p["VERSION"]
    dbs = ["%s/shared/%s" % (app.root, d) for d in str(p.get("DATABASES", "")).split()]
    out = {n["restore"]: HEADER + "[Unit]\nDescription=Restore %s's databases from the offsite replica where they do not exist yet\n"
           "After=network-online.target\n\n[Service]\nType=oneshot\n%s" % (app.name, common)
           + "".join("ExecStart=%s restore -config %s -if-db-not-exists -if-replica-exists %s\n" % (bin_, f["config"], d) for d in dbs),
           n["backup"]: HEADER + "[Unit]\nDescription=Offsite backup of %s's databases (Litestream)\nAfter=network-online.target %s\n"
           "StartLimitIntervalSec=0\n\n[Service]\nType=simple\n%s" % (app.name, n["restore"], common)
           + "ExecStart=%s\nRestart=always\nRestartSec=5\n"
           "# 3: the replica belongs to another server now (the agent's backup-run): stay stopped\nRestartPreventExitStatus=3\n"
           "TimeoutStopSec=20\n\n[Install]\nWantedBy=multi-user.target\n" % " ".join(as_app_argv(app.name, "backup-run"))}
    every = p.get("VERIFY_EVERY") or ""
    if every:
        out[n["verify"]] = (HEADER + "[Unit]\nDescription=Restore drill of %s's offsite backup (integrity check, row counts)\n\n"
                            "[Service]\nType=oneshot\n%s" % (app.name, common)
                            + "".join("ExecStart=%s\n" % " ".join(as_app_argv(app.name, "backup-verify-db", DB=d)) for d in dbs))
        out[n["timer"]] = (HEADER + "[Unit]\nDescription=Restore drill of %s's offsite backup, every %s\n\n[Timer]\nOnBootSec=%s\n"
                           "OnUnitActiveSec=%s\nRandomizedDelaySec=60\n\n[Install]\nWantedBy=timers.target\n" % (app.name, every, every, every))
    return out


def configure(host: Host, app: apps.App, params: Dict[str, Any], target: bl.Target, log: Log) -> bool:
    """The files the units read and the units; True when one that the backup unit reads changed
    (it restarts then; the drill's units change nothing it runs)."""
    config = params.get("CONFIG")
    if not isinstance(config, str) or "\0" in config:
        raise AgentError("CONFIG must be Litestream's config text")
    p = paths(app.name)
    own_dir(host.path("/etc/fdeploy"), 0o755)
    own_dir(host.path(app.config_dir), 0o700)
    changed = write_atomic(host.path(p[target.kind]), credentials_text(target.kind, params.get("CREDENTIALS")).encode(), 0o600)
    other = host.path(p["s3" if target.kind == "sftp" else "sftp"])
    if os.path.lexists(other):
        os.unlink(other)
    changed = write_atomic(host.path(p["config"]), config.encode(), 0o644) or changed
    if target.kind == "sftp":
        write_atomic(host.path(p["known_hosts"]), known_hosts_text(params).encode(), 0o644)
    changed = write_atomic(host.path(p["conf"]), run_conf_text(host, params, p["known_hosts"]).encode(), 0o644) or changed
    n, wanted = unit_names(app.name), render_units(app, params)
    if n["timer"] not in wanted:   # no backup.verifyEvery (any more): the drill goes
        host.run(["systemctl", "disable", "--now", "--quiet", n["timer"]])
    for name in (n["verify"], n["timer"]):
        f = host.path("/etc/systemd/system/" + name)
        if name not in wanted and os.path.lexists(f):
            os.unlink(f)
    for name, text in wanted.items():
        wrote = write_atomic(host.path("/etc/systemd/system/" + name), text.encode(), 0o644)
        changed = changed or (wrote and name in (n["backup"], n["restore"]))
    return changed


def journal(host: Host, unit: str, lines: int) -> List[str]:
    r = host.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"])
    return (r.stdout or "").splitlines()


def backup_start(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (backup-deploy, as root, after backup-claim and the installs): the files and units
    written, the units enabled, and on a server without its database the restore from the replica
    (a failure there stops the deploy: an empty database must never replace the backups; where the
    database exists, a missing extra one the replica cannot bring only warns). Result: changed (the
    backup unit restarts), missing (no database: backup-deploy creates it, as the app user), say."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    target, _ = check_params(params)
    db = host.path(app.root + "/shared/db/app.sqlite3")
    fresh = not os.path.lexists(db)
    changed = configure(host, app, params, target, log)
    n, say = unit_names(app.name), []
    host.systemctl("daemon-reload")
    host.systemctl("enable", "--quiet", n["backup"])
    if params.get("VERIFY_EVERY"):
        host.systemctl("enable", "--now", "--quiet", n["timer"])
    if fresh:
        log("no database on this server: restoring from the replica")
    t0 = time.monotonic()
    if host.run(["systemctl", "start", n["restore"]], merge_output=True).returncode != 0:
        if fresh:
            for line in journal(host, n["restore"], 20):
                log(line)
            raise AgentError("could not restore from the replica (%s, flask-deploy:backup.replica): the target is unreachable or refused\n"
                             "the deploy stops so that a fresh, empty database never replaces the backups. Fix the target and deploy again"
                             % target.name())
        last = [x for x in journal(host, n["restore"], 3) if not re.match(r"fdeploy|.*(Failed|Finished|Starting)", x)]
        say.append("warning: backup of '%s': the replica cannot be reached to restore a database this server does not have yet; "
                   "replication retries and catches up when the target answers (%s)" % (app.name, (last[-1] if last else "")[:200]))
    missing = not os.path.lexists(db)
    if fresh:
        say.append("restore: the replica holds no database yet (a first deploy)" if missing
                   else "restore: database restored from the replica in %d s" % round(time.monotonic() - t0))
    return {"changed": changed, "say": say, "missing": missing}


def _unit_transport(host: Host, app: str) -> Tuple[bl.Transport, bl.Me, Dict[str, str]]:
    """In the backup units (as the app user): the target from the run conf, the credentials that
    systemd handed over ($CREDENTIALS_DIRECTORY/sftp-key, or the S3 keys in the environment)."""
    conf = read_run_conf(host, app)
    target = target_of(dict(conf, KIND=conf.get("KIND", "")), conf.get("KNOWN_HOSTS", ""))
    if target.kind == "sftp":
        creds = bl.Credentials(sftp_key=os.path.join(os.environ.get("CREDENTIALS_DIRECTORY", ""), "sftp-key"))
    else:
        creds = bl.Credentials(access_key_id=os.environ.get("FDEPLOY_BACKUP_ACCESS_KEY_ID", ""),
                               secret_access_key=os.environ.get("FDEPLOY_BACKUP_SECRET_ACCESS_KEY", ""))
    return bl.Transport(host, target, creds), bl.Me(conf.get("ME", ""), conf.get("HOST", "")), conf


def fence(host: Host, app: str, log: Log) -> str:
    """The backup unit's fence (as the app user): ours | other | unreachable; the reason logged."""
    t, me, _ = _unit_transport(host, app)
    try:
        status, why = bl.check(t, me, _now)
    finally:
        t.close()
    if why:
        log(why)
    return status


def backup_check(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (the fence, once): status ours | other | unreachable."""
    return {"status": fence(host, apps.check_name(params.get("APP")), log)}


def lag_lines(local_json: str, replica_json: str, now: Optional[float] = None) -> List[str]:
    """The local position next to the replica's newest (`litestream status -json`, `ltx -json`)."""
    try:
        local: Optional[str] = json.loads(local_json)[0]["local_txid"]
    except (ValueError, LookupError, TypeError):
        local = None
    try:
        files = json.loads(replica_json) or []
        newest = max(files, key=lambda f: int(f["max_txid"], 16)) if files else None
    except (ValueError, LookupError, TypeError):
        return ["replica: unreadable answer from litestream ltx"]
    if newest is None:
        return ["replica: empty"]
    at = datetime.datetime.fromisoformat(newest["timestamp"].replace("Z", "+00:00")).timestamp()
    lines = ["replica: txid %s, written %.0f s ago" % (newest["max_txid"], (time.time() if now is None else now) - at)]
    if local is not None:
        behind = int(local, 16) - int(newest["max_txid"], 16)
        lines.append("local: txid %s; lag: %d transactions behind" % (local, max(behind, 0)))
    return lines


def databases(host: Host, config: str) -> List[str]:
    """The databases Litestream's config replicates (its `  - path: "…"` lines)."""
    raw = (read_regular(host.path(config)) or b"").decode()
    return re.findall(r'^  - path: "(.*)"$', raw, re.M)


def backup_status(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (fdeploy backup status, as the app user in the backup units' sandbox): the lease, then
    each database's replication lag."""
    t, me, conf = _unit_transport(host, apps.check_name(params.get("APP")))
    try:
        lines = [bl.owner_line(t, me)]
    finally:
        t.close()
    ls, config = conf.get("LITESTREAM", ""), conf.get("CONFIG", "")
    for db in databases(host, config):
        lines.append("== %s" % db)
        local = host.run([ls, "status", "-config", config, "-json", db])
        if local.returncode != 0:
            lines.append("local: unknown (%s)" % (local.stderr or "")[:200].strip())
        replica = host.run([ls, "ltx", "-config", config, "-json", db])
        if replica.returncode != 0:
            lines.append("replica: unreachable (%s)" % " ".join((replica.stderr or "")[:200].split()))
            continue
        lines += lag_lines(local.stdout if local.returncode == 0 else "", replica.stdout)
    return {"lines": lines}
