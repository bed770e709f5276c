"""backup.beforeChange: replica (as root, inside the deploy lock, before migrate.py changes the
schema or the release commands run): the undo of the change is the offsite replica's restore point instead of a local copy,
when replication runs, the lease is this server's and the replica reaches the database's position
within WAIT seconds (replica_point.py, as the app user). Otherwise the local copy is taken as
before, with a line saying why: a change never runs without an undo. Before the release commands,
every replicated database needs its point (else all are copied); SQLite files in shared/ that
Litestream does not replicate are copied either way.
Each point used is recorded (root-only) in /etc/fdeploy/<app>/undo-points.jsonl, newest last:
{"time", "db", "txid", "replica_time", "replica", "owner", "reason"}; `fdeploy backup restore --txid`
brings the database back to it."""
import json
import os
import stat
import time
from typing import Any, Callable, Dict, List, Optional

from . import app as apps
from . import backup, backup_ops
from .errors import AgentError
from .fsutil import own_dir, read_regular, write_atomic
from .host import Host

Log = Callable[[str], None]
WAIT_SECONDS = 30
APP_DB = "/shared/db/app.sqlite3"
KEEP_POINTS = 100


def wanted(params: Dict[str, Any]) -> bool:
    return params.get("BEFORE_CHANGE") == "replica"


def decide(configured: bool, active: str, probe: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The undo: {"use": "replica", "point"} or {"use": "copy", "why"}."""
    if not configured:
        return {"use": "copy", "why": "no offsite backup is configured on this server (backup.replica)"}
    if active != "active":
        return {"use": "copy", "why": "replication is not running (its unit is %s)" % active}
    if probe is None:
        return {"use": "copy", "why": "the replica's position could not be read"}
    if probe.get("why") or not probe.get("txid"):
        return {"use": "copy", "why": str(probe.get("why") or "no restore point")}
    return {"use": "replica", "point": probe}


def say(d: Dict[str, Any], db: str, stack_hint: str = "fdeploy backup restore --stack <stack>") -> str:
    if d["use"] == "replica":
        p = d["point"]
        extra = "" if db.endswith("/shared/db/app.sqlite3") else " --db %s" % db.split("/shared/", 1)[-1]
        return ("undo: the replica's restore point (backup.beforeChange: replica; replication healthy, caught up in %.1f s): "
                "txid %s, written %s; no local copy of %s. To restore it: %s --txid %s%s"
                % (p.get("waited", 0), p["txid"], p["time"], os.path.basename(db), stack_hint, p["txid"], extra))
    return "undo: a local copy (backup.beforeChange: replica falls back): %s" % d["why"]


def record(host: Host, app: apps.App, db: str, point: Dict[str, Any], conf: Dict[str, str], reason: str) -> None:
    """The point, appended to the app's root-only record (the newest KEEP_POINTS stay)."""
    own_dir(host.path(app.config_dir), 0o700)
    path = host.path(app.config_dir + "/undo-points.jsonl")
    lines: List[str] = [x for x in (read_regular(path) or b"").decode("utf-8", "replace").splitlines() if x.strip()]
    replica = "%s://%s%s" % (conf.get("KIND", ""), conf.get("R_HOST") or conf.get("R_BUCKET", ""), conf.get("R_PATH", ""))
    lines.append(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "db": db, "txid": point["txid"],
                             "replica_time": point["time"], "replica": replica, "owner": conf.get("ME", ""),
                             "reason": reason}, sort_keys=True))
    write_atomic(path, ("\n".join(lines[-KEEP_POINTS:]) + "\n").encode(), 0o600)


def replicated(host: Host, app: apps.App) -> List[str]:
    """The databases Litestream replicates here (the app's own when no backup is configured)."""
    try:
        return backup.databases(host, backup.read_run_conf(host, app.name).get("CONFIG", "")) or [app.root + APP_DB]
    except AgentError:
        return [app.root + APP_DB]


def _regular(path: str) -> bool:
    """PATH is a regular file (lstat: root follows no link the app user could plant in shared/)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def points(host: Host, app: apps.App, params: Dict[str, Any], log: Log, dbs: List[str], reason: str) -> Optional[Dict[str, Dict[str, Any]]]:
    """The replica's point of each of DBS (those that exist) to use instead of local copies, or None
    (the copies): all or none, each logged and recorded."""
    if not wanted(params):
        return None
    dbs = [d for d in dbs if _regular(host.path(d))]
    if not dbs:
        return None   # nothing to undo yet (a first deploy)
    configured = read_regular(host.path(backup.paths(app.name)["conf"])) is not None
    active = backup_ops._active(host, backup.unit_names(app.name)["backup"]) if configured else "none"
    found: Dict[str, Dict[str, Any]] = {}
    for db in dbs:
        probe = None
        if configured and active == "active":
            ok, result, err = backup_ops.as_app(host, app, "backup-point", limit=WAIT_SECONDS + 30, DB=db, WAIT=str(WAIT_SECONDS))
            probe = result if ok else {"why": "the probe failed (%s)" % ((err.splitlines() or ["?"])[-1][:200])}
        d = decide(configured, active, probe)
        if d["use"] != "replica":
            log(say(d, db) + ("" if len(dbs) == 1 else " (%s)" % db))
            return None
        found[db] = d["point"]
    conf = backup.read_run_conf(host, app.name)
    for db, point in found.items():
        log(say({"use": "replica", "point": point}, db))
        record(host, app, db, point, conf, reason)
    return found


def undo_point(host: Host, app: apps.App, params: Dict[str, Any], log: Log) -> Optional[Dict[str, Any]]:
    """The replica's point to use instead of a local copy of the app's database, or None (the copy)."""
    found = points(host, app, params, log, [app.root + APP_DB], "before the schema change")
    return None if found is None else found[app.root + APP_DB]
