"""The backup's work as the app user, from root's copy of the agent (/usr/local/lib/fdeploy/backup-agent,
backup_install.py: nothing here is imported from a path the app user can write), with the target's
credentials from systemd ($CREDENTIALS_DIRECTORY/sftp-key, or the S3 keys in the environment):
  backup-run        fdeploy-<app>-backup.service: `litestream replicate` only while the replica's lease
                    names this server (backup-check's fence, before Litestream starts and every
                    FENCE_EVERY s after). Another server's lease: Litestream stopped, exit 3 (the unit
                    does not restart it). A target that cannot be reached: replicate (Litestream catches up).
  backup-verify-db  DB's latest replica restored to a temporary file, PRAGMA integrity_check, row counts
                    per table next to the live database's (read-only); the drill unit and fdeploy backup verify
  backup-fetch      (fdeploy backup restore) DB restored from the replica to <db>.restoring
  backup-swap       (fdeploy backup restore, the app stopped) <db>.restoring into place, the old file
                    kept aside as <db>.before-restore-<STAMP>
  backup-newdb      (a first deploy, the replica empty) the database created, in WAL mode"""
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from . import app as apps
from . import backup, backup_lease as bl
from .errors import AgentError
from .host import Host

Log = Callable[[str], None]


class ReplicaTaken(AgentError):
    """Another server's lease: the backup unit stays stopped (RestartPreventExitStatus=3)."""
    exit_status = 3


class Stopped(Exception):
    """SIGTERM or SIGINT: systemd stops the unit."""


class Proc(Protocol):
    def poll(self) -> Optional[int]: ...
    def terminate(self) -> None: ...
    def wait(self) -> int: ...


def fence_loop(fence: Callable[[], str], start: Callable[[], Proc], sleep: Callable[[float], None], every: float) -> int:
    """Litestream (START) runs only while FENCE() (ours | other | unreachable) is not "other": the exit
    status, 3 when another server's lease stopped it, 0 when the unit was stopped (Stopped)."""
    proc: Optional[Proc] = None
    try:
        if fence() == "other":
            return ReplicaTaken.exit_status
        proc = start()
        while proc.poll() is None:
            sleep(every)
            if proc.poll() is None and fence() == "other":
                proc.terminate()
                proc.wait()
                return ReplicaTaken.exit_status
        return proc.wait()
    except Stopped:
        if proc is not None:
            proc.terminate()
            proc.wait()
        return 0


def _stop(signum: int, frame: Any) -> None:
    raise Stopped()


def fence_every() -> float:
    v = os.environ.get("FENCE_EVERY", "")
    return float(v) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]+)?", v) and float(v) > 0 else float(bl.FENCE_EVERY)


def backup_run(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (the backup unit's ExecStart, --app APP). Litestream's output goes to the unit's journal."""
    app = apps.check_name(params.get("APP"))
    conf = backup.read_run_conf(host, app)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    rc = fence_loop(lambda: backup.fence(host, app, log),
                    lambda: subprocess.Popen([conf["LITESTREAM"], "replicate", "-config", conf["CONFIG"]], stdin=subprocess.DEVNULL),
                    time.sleep, fence_every())
    if rc == ReplicaTaken.exit_status:
        raise ReplicaTaken("backup of '%s' stopped: the replica is another server's (the lines above name it; backup.takeover)" % app)
    if rc != 0:
        raise AgentError("litestream replicate exited with status %d (the lines above say why); systemd restarts the unit (journalctl -u fdeploy-%s-backup)" % (rc, app))
    return {"stopped": True}


def _db(host: Host, params: Dict[str, Any]) -> Tuple[Dict[str, str], str, str]:
    """The run conf, DB (one of the databases Litestream's config replicates) and its file here."""
    conf = backup.read_run_conf(host, apps.check_name(params.get("APP")))
    db = params.get("DB")
    if db not in backup.databases(host, conf.get("CONFIG", "")):
        raise AgentError("bad database %r: not one that backup.databases replicates (%s)" % (db, conf.get("CONFIG", "")))
    return conf, str(db), host.path(str(db))


def _quote(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def verify_lines(host: Host, conf: Dict[str, str], db: str, path: str, tmp: str) -> Tuple[bool, List[str]]:
    out, t0 = os.path.join(tmp, "verify.sqlite3"), time.monotonic()
    r = host.run([conf["LITESTREAM"], "restore", "-config", conf["CONFIG"], "-o", out, db], merge_output=True)
    if r.returncode != 0:
        return False, ["restore: FAILED"] + (r.stdout or "").strip().splitlines()[-3:]
    lines = ["restore: ok in %d s" % round(time.monotonic() - t0)]
    con = sqlite3.connect(out)
    try:
        check = "\n".join(row[0] for row in con.execute("PRAGMA integrity_check").fetchmany(5))
        lines.append("integrity_check: %s" % check)
        if check != "ok":
            return False, lines
        tables = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        counts = {t: con.execute("SELECT count(*) FROM %s" % _quote(t)).fetchone()[0] for t in tables}
    except sqlite3.Error as e:
        return False, lines + ["integrity_check: %s" % e]
    finally:
        con.close()
    for t in tables:
        try:
            live_con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            try:
                live = str(live_con.execute("SELECT count(*) FROM %s" % _quote(t)).fetchone()[0])
            finally:
                live_con.close()
        except sqlite3.Error:
            live = "?"
        lines.append("rows %s: replica %d, live %s" % (t, counts[t], live))
    return True, lines


def backup_verify_db(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (the drill unit; fdeploy backup verify through backup-verify): params APP, DB. Fails when
    the replica does not restore or does not pass integrity_check."""
    conf, db, path = _db(host, params)
    tmp = tempfile.mkdtemp(prefix="fdeploy-verify-")
    try:
        ok, lines = verify_lines(host, conf, db, path, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in lines:
        log(line)
    if not ok:
        raise AgentError("the replica of %s did not pass the restore drill (the lines above say why; flask-deploy:backup.replica)" % db)
    return {"lines": lines}


def backup_fetch(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (fdeploy backup restore): params APP, DB, TIMESTAMP or TXID (optional, checked by the caller too)."""
    conf, db, path = _db(host, params)
    ts, txid = str(params.get("TIMESTAMP") or ""), str(params.get("TXID") or "")
    if ts and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", ts):
        raise AgentError("bad timestamp %r (fdeploy backup restore --timestamp: e.g. 2026-12-05T07:00:00Z)" % ts)
    if txid and (ts or not re.fullmatch(r"[0-9a-f]{16}", txid)):
        raise AgentError("bad txid %r (fdeploy backup restore --txid: 16 hex digits, without --timestamp)" % txid)
    if os.path.lexists(path + ".restoring"):   # a restore stopped half-way left it
        os.unlink(path + ".restoring")
    at = ["-timestamp", ts] if ts else ["-txid", txid] if txid else []
    r = host.run([conf["LITESTREAM"], "restore", "-config", conf["CONFIG"]] + at + ["-o", db + ".restoring", db],
                 merge_output=True)
    for line in (r.stdout or "").strip().splitlines()[-5:]:
        log(line)
    if r.returncode != 0:
        if os.path.lexists(path + ".restoring"):
            os.unlink(path + ".restoring")
        raise AgentError("restore of %s failed; nothing was changed (the lines above say why)" % db)
    return {"restoring": db + ".restoring"}


def backup_swap(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (fdeploy backup restore, the app and replication stopped): params APP, DB, STAMP."""
    _, db, path = _db(host, params)
    stamp = str(params.get("STAMP", ""))
    if not re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", stamp):
        raise AgentError("STAMP must be a time like 20261205T070000Z, not %r" % stamp)
    if not os.path.isfile(path + ".restoring"):
        raise AgentError("no restored copy %s.restoring to put in place; run fdeploy backup restore again" % db)
    for suffix in ("", "-wal", "-shm"):
        if os.path.lexists(path + suffix):
            os.rename(path + suffix, "%s.before-restore-%s%s" % (path, stamp, suffix))
    os.rename(path + ".restoring", path)
    _group_rw(path)
    shutil.rmtree(os.path.join(os.path.dirname(path), ".%s-litestream" % os.path.basename(path)), ignore_errors=True)
    return {"kept": "%s.before-restore-%s" % (db, stamp)}


def _group_rw(db: str) -> None:
    """The slot users share the database through the app's group."""
    os.chmod(db, os.stat(db).st_mode & 0o7777 | 0o060)


def backup_newdb(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Verb (a first deploy: no database, none in the replica): Litestream replicates a file that exists;
    migrate.py brings its schema. Params APP, DB."""
    _, _, path = _db(host, params)
    con = sqlite3.connect(path, timeout=30)
    try:
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        con.close()
    _group_rw(path)
    return {"journal_mode": mode}
