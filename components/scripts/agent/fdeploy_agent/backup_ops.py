"""The backup step and `fdeploy backup` (as root; components/backup.ts, cli/commands/backup.ts):
  backup-deploy   the deploy (inside its deploy lock): every setting checked and the lease decided
                  (backup-claim) before anything changes; Litestream and root's copy of the agent
                  installed; files and units written, a new server restored (backup-start); a first
                  deploy's database created; replication (re)started where anything it runs changed
  backup-delete   (pulumi destroy, --app APP) the units and config removed; the replica and data stay
  backup-verify   each database's latest replica restored to a temporary file and checked (as the app user)
  backup-restore  the app and replication stopped, each database restored from the replica (to
                  TIMESTAMP, or the latest; with TXID the app's database only, to that restore
                  point: replica_undo.py), the old file kept aside, both started again
  backup-report   replication running, the lease, each database's lag, the last scheduled drill
The app user's part runs in a transient unit with the backup units' sandbox and credentials:
root's copy of the agent (backup_unit.py), never a path the app user can write."""
import datetime
import json
import os
import time
from typing import Any, Callable, Dict, List, Tuple

from . import app as apps
from . import backup, backup_install, lease, units
from .errors import AgentError
from .host import Host
from .lock import deploy_lock

Log = Callable[[str], None]


def as_app(host: Host, app: apps.App, verb: str, limit: int = 0, **params: str) -> Tuple[bool, Dict[str, Any], str]:
    """VERB of backup_unit.py as the app user in the backup units' sandbox, with their credentials:
    (succeeded, its result, its log lines)."""
    f = backup.paths(app.name)
    props = ["User=" + app.user, "Group=" + app.user] + [x for x in units.hardening(app.root).splitlines() if x.strip()]
    if os.path.isfile(host.path(f["sftp"])):
        props.append("LoadCredential=sftp-key:" + f["sftp"])
    if os.path.isfile(host.path(f["s3"])):
        props.append("EnvironmentFile=" + f["s3"])
    if limit:
        props.append("RuntimeMaxSec=%d" % limit)
    argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect"] + [a for p in props for a in ("-p", p)]
    r = host.run(argv + backup.as_app_argv(app.name, verb, **params))
    try:
        result = json.loads((r.stdout or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {}
    return r.returncode == 0 and result.get("ok") is True, result, (r.stderr or "").strip()


def _active(host: Host, unit: str) -> str:
    return (host.run(["systemctl", "is-active", unit]).stdout or "").strip() or "unknown"


def backup_deploy(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (the Backup step). Result: say (the lines for the deploy's output; "warning: …" ones warn), changed."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    unit = backup.unit_names(app.name)["backup"]
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        say = backup.backup_claim(host, params, log, lock_wait)["say"]
        for line in say:
            log(line)
        backup_install.litestream(host, params, log)
        changed = backup_install.agent_copy(host)
        started = backup.backup_start(host, params, log, lock_wait)
        for line in started["say"]:
            log(line)
        say += started["say"]
        changed = started["changed"] or changed
        old = host.path(backup.OLD_RUN)
        if os.path.lexists(old):   # a server deployed before: its units ran it (rewritten just now)
            os.unlink(old)
            changed = True
        if started["missing"]:
            db = app.root + "/shared/db/app.sqlite3"
            ok, _, err = as_app(host, app, "backup-newdb", limit=60, DB=db)
            if not ok:
                raise AgentError("could not create shared/db/app.sqlite3 as %s within 60 s; if something else is at that path, remove it and deploy again\n%s"
                                 % (app.user, err.splitlines()[-1] if err else ""))
        if changed or _active(host, unit) != "active":
            host.systemctl("restart", unit)
        time.sleep(1)
        if _active(host, unit) != "active":
            last = (backup.journal(host, unit, 1) or [""])[-1][:200]
            say.append("warning: backup of '%s': Litestream is not running (%s); systemd restarts it" % (app.name, last))
            log(say[-1])
    log("backup: litestream %s replicating %s" % (params["VERSION"], params.get("DATABASES", "")))
    return {"say": say, "changed": changed}


def backup_delete(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (pulumi destroy of the Backup step, --app APP): replication stopped, units and files gone."""
    app = apps.check_name(params.get("APP"))
    n, f = backup.unit_names(app), backup.paths(app)
    host.run(["systemctl", "disable", "--now", "--quiet", n["backup"], n["timer"]])
    for path in ["/etc/systemd/system/" + n[k] for k in ("timer", "verify", "backup", "restore")] + [f[k] for k in ("config", "conf", "sftp", "s3")]:
        if os.path.lexists(host.path(path)):
            os.unlink(host.path(path))
    host.run(["systemctl", "daemon-reload"])
    log("backup of %s stopped (the replica and the data stay)" % app)
    return {"removed": True}


def _settings(host: Host, params: Dict[str, Any]) -> Tuple[apps.App, List[str]]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    backup._check(params, "TIMESTAMP", r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", "timestamp",
                  "expected e.g. 2026-12-05T07:00:00Z", optional=True)
    backup._check(params, "TXID", r"[0-9a-f]{16}", "txid", "expected 16 hex digits, as the deploy's undo: line printed it", optional=True)
    if params.get("TIMESTAMP") and params.get("TXID"):
        raise AgentError("fdeploy backup restore: --timestamp or --txid, not both")
    backup._check(params, "DB", r"(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9._/-]+\.(sqlite3?|db)", "database", "a path in shared/, e.g. db/app.sqlite3", optional=True)
    conf = backup.read_run_conf(host, app.name)
    return app, backup.databases(host, conf.get("CONFIG", ""))


def backup_verify(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (fdeploy backup verify): changes nothing. Fails when a database's replica fails the drill."""
    app, dbs = _settings(host, params)
    failed = []
    for db in dbs:
        log("== %s" % db)
        ok, _, err = as_app(host, app, "backup-verify-db", DB=db)
        for line in err.splitlines():
            log(line)
        if not ok:
            failed.append(db)
    log("replication: %s" % _active(host, backup.unit_names(app.name)["backup"]))
    if failed:
        raise AgentError("fdeploy backup verify: FAILED for %s (the lines above say why)" % " ".join(failed))
    return {"summary": "verify: ok"}


def backup_restore(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (fdeploy backup restore [TIMESTAMP]): every database fetched first (a failure changes
    nothing), then the app and replication stopped, the files swapped (as the app user), both started."""
    app, dbs = _settings(host, params)
    ts, txid = str(params.get("TIMESTAMP") or ""), str(params.get("TXID") or "")
    if txid:   # a restore point is one database's (by default the app's: the undo of a schema change)
        want = app.root + "/shared/" + str(params.get("DB") or "db/app.sqlite3")
        if want not in dbs:
            raise AgentError("restore --txid: %s is not a database the replica holds (%s)" % (want, " ".join(dbs)))
        dbs = [want]
    at = {"TIMESTAMP": ts} if ts else {"TXID": txid} if txid else {}
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        r = host.run(["systemctl", "list-units", "--plain", "--no-legend", "--state=active", "fdeploy-%s@*.service" % app.name])
        slots = [x.split()[0] for x in (r.stdout or "").splitlines() if x.split()]
        for db in dbs:
            ok, _, err = as_app(host, app, "backup-fetch", DB=db, **at)
            for line in err.splitlines():
                log(line)
            if not ok:
                raise AgentError("restore of %s failed; nothing was changed (the lines above say why)" % db)
        running = [backup.unit_names(app.name)["backup"]] + slots
        host.systemctl("stop", *running)
        try:
            for db in dbs:
                ok, result, err = as_app(host, app, "backup-swap", DB=db, STAMP=stamp)
                if not ok:
                    raise AgentError("could not put the restored %s in place: %s" % (db, err.splitlines()[-1] if err else "?"))
                log("restored %s (the previous file: %s)" % (db, result["kept"]))
        finally:
            host.systemctl("start", *running)
    return {"summary": "restore: done%s; the app runs again%s" % (" (to %s)" % (ts or "txid " + txid) if ts or txid else "", ": " + " ".join(slots) if slots else "")}


def backup_report(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (fdeploy backup status)."""
    app, _ = _settings(host, params)
    n = backup.unit_names(app.name)
    lines = ["replication: %s" % _active(host, n["backup"])]
    ok, result, err = as_app(host, app, "backup-status")
    lines += result.get("lines", []) if ok else ["lease and lag: unknown (%s)" % (err.splitlines()[-1] if err else "?")]
    if os.path.lexists(host.path("/etc/systemd/system/" + n["timer"])):
        at = (host.run(["systemctl", "show", "-p", "ExecMainExitTimestamp", "--value", n["verify"]]).stdout or "").strip()
        if not at:
            lines.append("last verify: not yet on this server (the timer: %s)" % _active(host, n["timer"]))
        else:
            res = (host.run(["systemctl", "show", "-p", "Result", "--value", n["verify"]]).stdout or "").strip()
            lines.append("last verify: %s, %s" % (at, res))
    else:
        lines.append("last verify: no schedule (backup.verifyEvery)")
    return {"summary": lines}
