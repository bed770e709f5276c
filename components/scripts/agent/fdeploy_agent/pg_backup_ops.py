"""The pgBackRest verbs (issue 33; decisions and texts: pg_backup.py).

As root on the database server (the deploy, fdeploy backup):
  pg-backup-deploy   the lease first (a refused deploy changes nothing), then pgbackrest installed, its
                     config, a brand-new server restored from the repository, archiving on, the stanza,
                     a first full backup, the timer units
  pg-backup-restore  point-in-time restore (TIMESTAMP): postgres stopped, pgbackrest restore --type=time, started
  pg-backup-status   the last backup, the archive's lag, the lease
As postgres (archive_command, the timer units, from root's copy of the agent):
  pgbackrest-archive-push    the fence (the lease is this server's, checked at most every 10 s), then archive-push
  pg-backup-run      the fence, then a full (weekly) or differential backup; retention expires old ones
  pg-backup-drill    the latest backup restored into a temporary folder, started on a socket of its own,
                     every table counted next to the live database; then removed"""
import datetime
import fcntl
import json
import os
import re
import shutil
import time
from typing import Any, Callable, Dict, List, Optional

from . import backup_lease as bl
from . import pg_backup as pb
from .app import check_name
from .apt import install_missing
from .backup_install import agent_copy
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .host import Host
from .pg_server import PSQL, RESTORE_PENDING, alter_system, apply_settings, cluster, entries, psql, server_lock

Log = Callable[[str], None]
SYSTEM_DBS = ("postgres", "template0", "template1")


class Fenced(AgentError):
    exit_status = 3


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def server_id(host: Host) -> str:
    """This database server's id in the lease: random, made once (0644: no secret)."""
    raw = (read_regular(host.path(pb.ID)) or b"").decode("ascii", "replace").strip()
    if not re.fullmatch(r"[0-9a-f]{32}", raw):
        raw = os.urandom(16).hex()
        write_atomic(host.path(pb.ID), raw.encode(), 0o644)
    return raw


def _run(host: Host, argv: List[str], what: str, input: Optional[str] = None) -> str:
    r = host.run(argv, merge_output=True, input=input)
    if r.returncode != 0:
        raise AgentError("%s failed (exit %d): fdeploy backup status shows the repository's state\n%s" % (what, r.returncode, (r.stdout or "").strip()[-600:]))
    return r.stdout or ""


def info(host: Host, app: str) -> Optional[Dict[str, Any]]:
    r = host.run(pb.pgbackrest(app, "--output=json", "info"))
    if r.returncode != 0:
        raise bl.Unreachable(((r.stderr or "") + (r.stdout or "")).strip()[-400:])
    return pb.parse_info(r.stdout, app)


def pgdata(host: Host) -> str:
    version, name, _ = cluster(host)
    return "/var/lib/postgresql/%s/%s" % (version, name)


def fresh(host: Host) -> bool:
    """A brand-new server: no database but PostgreSQL's own (the app's not created yet)."""
    return psql(host, "SELECT count(*) FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1');") == "0"


def _write_root_postgres(host: Host, path: str, data: bytes) -> bool:
    """PATH: root:postgres 0640 (postgres reads it, nobody else)."""
    changed = write_atomic(host.path(path), data, 0o640)
    os.chown(host.path(path), 0, host.user_ids("postgres")[1])
    return changed


def wait_primary(host: Host, log: Log, limit: float = 600, argv: Optional[List[str]] = None) -> None:
    """After a restore: until recovery has replayed the archive and the server accepts writes (ARGV: psql for another server)."""
    start = host.clock()
    while host.clock() - start < limit:
        r = host.run(argv or pb_psql_argv(), input="SELECT pg_is_in_recovery();")
        if r.returncode == 0 and (r.stdout or "").strip() == "f":
            return
        host.sleep(0.5)
    raise AgentError("PostgreSQL did not finish its recovery from the repository within %d s (see /var/log/postgresql/)" % limit)


def pb_psql_argv() -> List[str]:
    return PSQL + ["-d", "postgres"]


def restore(host: Host, app: str, log: Log, args: List[str]) -> float:
    """postgres stopped, pgbackrest restore ARGS over the data folder (--delta), started, recovered: seconds taken."""
    version, name, _ = cluster(host)
    unit = "postgresql@%s-%s" % (version, name)
    t0 = time.monotonic()
    # until recovery is over, the data folder may be half restored: the marker keeps pg-install from starting
    # it and makes the next deploy restore again (ARGS: the same point)
    write_atomic(host.path(RESTORE_PENDING), (json.dumps({"args": args, "since": _now()}) + "\n").encode(), 0o600)
    host.systemctl("stop", unit)
    _run(host, pb.pgbackrest(app, "--delta", "--recovery-option=restore_command=" + pb.restore_command(app), *args, "restore"), "pgbackrest restore")
    host.systemctl("start", unit)
    wait_primary(host, log)
    os.unlink(host.path(RESTORE_PENDING))
    # the drop-in's reload may have come while recovery still ran (pg_ctl returns at consistency): again now
    # that it is over, or archive_timeout waits for the next checkpoint (pg_backup.DROPIN says why)
    psql(host, "SELECT pg_reload_conf();")
    # postgresql.auto.conf came back as the backup had it (ALTER SYSTEM is not in the WAL): the settings as now
    apply_settings(host, log)
    timeout = json.loads(read_regular(host.path(pb.SETTINGS)) or b"{}").get("archive_timeout")
    if isinstance(timeout, int) and timeout > 0:
        apply_archiving(host, app, timeout, log)
    else:   # a backup.json written before it held archive_timeout: the next deploy sets it
        log("backup.json has no archive_timeout: the archiving settings are the backup's until the next deploy")
    return time.monotonic() - t0


def archive_timeout_dropin(host: Host) -> bool:
    """The postgresql@ drop-in: a reload after every start (pg_backup.DROPIN says why)."""
    path = host.path(pb.DROPIN)
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    if not write_atomic(path, pb.DROPIN_TEXT.encode(), 0o644):
        return False
    host.systemctl("daemon-reload")
    return True


def apply_archiving(host: Host, app: str, archive_timeout: int, log: Log) -> bool:
    return alter_system(host, pb.wanted_settings(app, archive_timeout), pb.RESTART_SETTINGS, log)


def pg_backup_deploy(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    p = pb.check_params(params)
    app = p["app"]
    say: List[str] = []
    with server_lock(host, lock_wait, log):
        other = pb.other_app(read_regular(host.path(pb.SETTINGS)), app)
        if other:
            raise AgentError("this database server's backup is app '%s''s already: give this app its own flask-deploy:database.host\n"
                             "(or remove backup from this stack: WAL archiving is the server's, one repository per server)" % other)
        problem = pb.shared_refusal(app, [e.get("app", "") for e in entries(host)])
        if problem:
            raise AgentError(problem)
        me = bl.Me(server_id(host), p["host"])
        pending = pb.pending_args(read_regular(host.path(RESTORE_PENDING)))   # an interrupted restore: PostgreSQL may be stopped
        is_fresh = pending is not None or fresh(host)
        # the lease first: a refused deploy changes nothing here
        t = bl.Transport(host, pb.target_of(p), bl.Credentials(access_key_id=p["key"], secret_access_key=p["secret"]))
        try:
            say += bl.claim(t, me, is_fresh, p["takeover"], _now, "database.host")
        except bl.Refused as e:
            raise AgentError(str(e))
        except bl.Unreachable as e:
            if is_fresh:
                raise AgentError("cannot reach the repository %s (%s): the deploy stops (fdeploy backup status)\na brand-new database server cannot "
                                 "tell whether it must restore from it, and an empty database must never replace the backups" % (t.target.name(), e))
            say.append("warning: cannot reach the repository %s (%s): WAL archiving catches up when it answers" % (t.target.name(), e))
        finally:
            t.close()
        changed = install_missing(host, "pgbackrest", ["pgbackrest"], log)
        changed = agent_copy(host) or changed
        changed = archive_timeout_dropin(host) or changed
        data = pgdata(host)
        changed = _write_root_postgres(host, pb.CONF, pb.conf_text(p, data).encode()) or changed
        changed = _write_root_postgres(host, pb.SETTINGS, pb.settings_json(p, me.id)) or changed
        try:
            repo = info(host, app)
        except bl.Unreachable as e:
            if is_fresh:
                raise AgentError("pgbackrest cannot read the repository (fdeploy backup status): %s" % e)
            repo, step = None, "unreachable"
            say.append("warning: pgbackrest cannot read the repository: %s" % e)
        else:
            step = pb.plan(is_fresh, repo, pending is not None)
        if step == "restore":
            log("restoring the database server from the repository (%s)" % ("an interrupted restore, again" if pending is not None else "a new server: server loss"))
            took = restore(host, app, log, pending or [])
            say.append("restored from the repository %s in %.1f s (the newest archived WAL)" % (pb.target_of(p).name(), took))
            changed = True
        changed = apply_archiving(host, app, p["archive_timeout"], log) or changed
        if step == "create":
            log("pgbackrest stanza-create")
            _run(host, pb.pgbackrest(app, "stanza-create"), "pgbackrest stanza-create")
        if step in ("create", "backup"):
            log("a first full backup")
            _run(host, pb.pgbackrest(app, "--type=full", "backup"), "pgbackrest backup --type=full")
            say.append("first full backup taken")
            changed = True
        units = pb.render_units(app, p)
        for n in list(pb.UNITS.values()):
            path = host.path("/etc/systemd/system/" + n)
            if n in units:
                changed = write_atomic(path, units[n].encode(), 0o644) or changed
            elif os.path.exists(path):
                host.run(["systemctl", "disable", "--now", n])
                os.unlink(path)
                changed = True
        host.systemctl("daemon-reload")
        host.systemctl("enable", "--now", pb.UNITS["timer"], *([pb.UNITS["verify-timer"]] if pb.UNITS["verify-timer"] in units else []))
        return {"changed": changed, "say": say, "summary": "\n".join(say)}


def _settings(host: Host) -> Dict[str, Any]:
    raw = read_regular(host.path(pb.SETTINGS))
    if raw is None:
        raise AgentError("no pgBackRest backup is configured on this database server (%s); deploy with backup.replica set" % pb.SETTINGS)
    return json.loads(raw)


def fence(host: Host, app: str, log: Log, cache: bool) -> str:
    """As postgres: ours | other | unreachable. CACHE: a check that found the lease ours less than
    FENCE_EVERY seconds ago stands (archive_command runs per WAL segment)."""
    s = _settings(host)
    if s.get("app") != app:
        raise AgentError("this server's backup is app %r's, not %r: check flask-deploy:database.host" % (s.get("app"), app))
    mark = host.path(pb.FENCE_CACHE)
    if cache:
        try:
            if time.time() - os.stat(mark).st_mtime < bl.FENCE_EVERY:
                return "ours"
        except OSError:
            pass
    conf = (read_regular(host.path(pb.CONF)) or b"").decode()
    t = bl.Transport(host, pb.target_of(s), pb.credentials_of(conf))
    try:
        status, why = bl.check(t, bl.Me(s["id"], s.get("host", "")), _now)
    finally:
        t.close()
    if why:
        log(why)
    if status == "ours":
        try:
            write_atomic(mark, _now().encode(), 0o600)
        except OSError:
            pass
    elif os.path.exists(mark):
        os.unlink(mark)
    return status


def pg_archive_push(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = check_name(params.get("APP"))
    wal = params.get("WAL")
    if not isinstance(wal, str) or not re.fullmatch(r"pg_wal/[0-9A-F]{24}(\.partial|\.history|\.[0-9A-F]{8}\.backup)?|pg_wal/[0-9A-F]{8}\.history", wal):
        raise AgentError("bad WAL %r (archive_command passes %%p: pg_wal/<segment>)" % (wal,))
    status = fence(host, app, log, cache=True)
    if status != "ours":   # unreachable: the push would fail too; PostgreSQL keeps the segment and retries
        why = "the repository belongs to another server" if status == "other" else "the repository cannot be reached"
        raise Fenced("not archiving %s: %s (see above; fdeploy backup status)" % (wal, why))
    _run(host, pb.pgbackrest(app, "archive-push", wal, as_root=False), "pgbackrest archive-push")
    return {"archived": wal}


def pg_backup_run(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = check_name(params.get("APP"))
    if fence(host, app, log, cache=False) == "other":
        raise Fenced("no backup: the repository belongs to another server (see above; fdeploy backup status)")
    argv = lambda *a: pb.pgbackrest(app, *a, as_root=False)   # noqa: E731
    r = host.run(argv("--output=json", "info"))
    kind = pb.backup_type(pb.parse_info(r.stdout, app) if r.returncode == 0 else None, time.time())
    log("pgbackrest backup --type=%s" % kind)
    _run(host, argv("--type=" + kind, "backup"), "pgbackrest backup")
    return {"type": kind}


def check_timestamp(value: object) -> str:
    """An ISO-8601 UTC instant (2026-12-05T07:00:00Z or with a fraction) as pgBackRest's target."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", value):
        raise AgentError("bad --timestamp %r: expected a UTC time like 2026-12-05T07:00:00Z" % (value,))
    return value[:-1].replace("T", " ") + "+00"


def pg_backup_restore(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """Point-in-time restore (the app in maintenance: fdeploy backup restore does that on its servers)."""
    app = check_name(params.get("APP"))
    target = check_timestamp(params.get("TIMESTAMP")) if params.get("TIMESTAMP") else ""
    with server_lock(host, lock_wait, log):
        s = _settings(host)
        conf = (read_regular(host.path(pb.CONF)) or b"").decode()
        t = bl.Transport(host, pb.target_of(s), pb.credentials_of(conf))
        try:
            lease, _ = t.read()
        finally:
            t.close()
        if lease is not None and lease.id != s["id"]:
            raise AgentError("the repository belongs to another server %s: restore there (flask-deploy:database.host)" % lease.describe())
        args = ["--type=time", "--target=" + target, "--target-action=promote"] if target else []
        log("restoring %s" % ("to %s" % target if target else "the latest"))
        took = restore(host, app, log, args)
        line = "restored %s in %.1f s" % ("to %s" % params["TIMESTAMP"] if target else "to the newest archived WAL", took)
        return {"summary": line, "seconds": round(took, 1)}


def _archiver(host: Host) -> Dict[str, str]:
    rows = psql(host, "SELECT coalesce(last_archived_wal, ''), coalesce(extract(epoch FROM last_archived_time)::text, ''), "
                      "coalesce(last_failed_wal, ''), coalesce(extract(epoch FROM last_failed_time)::text, '') FROM pg_stat_archiver;")
    return dict(zip(["last_archived_wal", "last_archived_epoch", "last_failed_wal", "last_failed_epoch"], rows.split("|")))


def brief_status(host: Host) -> Dict[str, Any]:
    """For pg-status (fdeploy status, the drift check): {} without pgBackRest here, else {"backup": the
    last backup and the archive's age, "archiving": False when archive_command fails}."""
    raw = read_regular(host.path(pb.SETTINGS))
    if raw is None:
        return {}
    app = json.loads(raw).get("app", "")
    try:
        repo = info(host, app)
    except bl.Unreachable:
        repo = None
    lines, out = pb.status_lines(repo, _archiver(host), time.time())
    out["lines"] = lines
    return {"backup": out, "archiving": not out.get("archiveFailing", False)}


def pg_backup_status(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = check_name(params.get("APP"))
    if read_regular(host.path(pb.SETTINGS)) is None:
        return {"configured": False, "summary": "no pgBackRest backup on this server"}
    s = _settings(host)
    archiver = _archiver(host)
    try:
        repo = info(host, app)
    except bl.Unreachable as e:
        repo = None
        log("pgbackrest info: %s" % e)
    lines, out = pb.status_lines(repo, archiver, time.time())
    conf = (read_regular(host.path(pb.CONF)) or b"").decode()
    t = bl.Transport(host, pb.target_of(s), pb.credentials_of(conf))
    try:
        lines.append(bl.owner_line(t, bl.Me(s["id"], s.get("host", ""))))
    finally:
        t.close()
    out.update(configured=True, lines=lines, summary="\n".join(lines), owner=lines[-1])
    return out


def pg_backup_drill(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    """As postgres: the latest backup (and the archive after it) restored into a temporary folder,
    started on a socket of its own (no TCP, no archiving), each table of each database counted next
    to the live one; the folder removed."""
    app = check_name(params.get("APP"))
    _settings(host)
    if os.geteuid() == 0:   # fdeploy backup verify (root over ssh): the drill runs as postgres, from root's copy of the agent
        r = host.run(["runuser", "-u", "postgres", "--", "/usr/bin/python3", "-I", "-B", pb.BACKUP_AGENT, "pg-backup-drill", "--app", app])
        for line in (r.stderr or "").splitlines():
            log(line)
        try:
            result = json.loads((r.stdout or "").strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {}
        if r.returncode != 0 or not result.get("ok"):
            raise AgentError("the restore drill failed (fdeploy backup verify): %s" % result.get("error", "exit %d" % r.returncode))
        result.pop("ok", None)
        return result
    os.chdir("/")   # runuser kept root's working folder, which postgres cannot enter
    lock = drill_lock(host)
    try:
        return _drill(host, app, log)
    finally:
        os.close(lock)


def _drill(host: Host, app: str, log: Log) -> Dict[str, Any]:
    version, _, _ = cluster(host)
    work = host.path(pb.DRILL)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work + "/data", 0o700)
    os.makedirs(work + "/run", 0o700)
    binary = "/usr/lib/postgresql/%s/bin" % version
    try:
        # the newest backup and every archived WAL segment after it (what a server loss would restore)
        _run(host, pb.pgbackrest(app, "--pg1-path=" + work + "/data", "--recovery-option=restore_command=" + pb.restore_command(app, work + "/data"),
                                 "--archive-mode=off", "restore", as_root=False), "pgbackrest restore (drill)")
        opts = "-c port=5499 -c listen_addresses='' -c unix_socket_directories=%s/run -c archive_mode=off -c hba_file=%s/data/pg_hba.conf " \
               "-c config_file=/dev/null -c ssl=off -c data_directory=%s/data" % (work, work, work)
        with open(work + "/data/pg_hba.conf", "w") as f:
            f.write("local all postgres peer\n")
        with open(work + "/data/postgresql.conf", "w") as f:
            f.write("")
        r = host.run([binary + "/pg_ctl", "-D", work + "/data", "-w", "-t", "300", "-o", opts.replace("-c config_file=/dev/null ", ""),
                      "-l", work + "/log", "start"], merge_output=True)
        if r.returncode != 0:
            tail = (read_regular(work + "/log") or b"").decode("utf-8", "replace").strip().splitlines()[-8:]
            raise AgentError("the drill's PostgreSQL did not start (pg_ctl exit %d; fdeploy backup verify): %s" % (r.returncode, " | ".join(tail)))
        drill_psql = ["psql", "-X", "-q", "-A", "-t", "-h", work + "/run", "-p", "5499"]
        try:
            # pg_ctl -w returns at the backup's consistency point: the rest of the archive is replayed after it
            wait_primary(host, log, 300, drill_psql + ["-d", "postgres"])
            counts = _counts(host, drill_psql)
            live = _counts(host, ["psql", "-X", "-q", "-A", "-t"])
        finally:
            host.run([binary + "/pg_ctl", "-D", work + "/data", "-m", "immediate", "stop"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["%s: %s rows in the backup, %s live" % (k, counts[k], live.get(k, "?")) for k in sorted(counts)]
    log("\n".join(["restore drill: the latest backup restored and started"] + lines))
    return {"summary": "\n".join(["restore drill passed: the latest backup starts"] + lines), "counts": counts, "live": live}


def drill_lock(host: Host) -> int:
    """One drill at a time (the timer's and fdeploy backup verify share the folder and port 5499): a flock
    beside the folder, which says since when the drill holding it runs."""
    fd = os.open(host.path(pb.DRILL + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        since = os.read(fd, 100).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise AgentError("a restore drill is running since %s (%s.lock): run fdeploy backup verify again once it is over" % (since, pb.DRILL))
    os.ftruncate(fd, 0)
    os.write(fd, _now().encode())
    return fd


def _counts(host: Host, psql_argv: List[str]) -> Dict[str, str]:
    """database.schema.table -> row count, for every database but PostgreSQL's own."""
    def q(db: str, sql: str) -> str:
        # stdout only: a warning on stderr (e.g. runuser's "could not change directory") is not a row
        r = host.run(psql_argv + ["-d", db, "-v", "ON_ERROR_STOP=1"], input=sql)
        if r.returncode != 0:
            raise AgentError("psql (drill) failed (exit %d; fdeploy backup verify): %s" % (r.returncode, ((r.stderr or "") + (r.stdout or "")).strip()[-600:]))
        return (r.stdout or "").strip()
    out: Dict[str, str] = {}
    for db in q("postgres", "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1;").split():
        tables = q(db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                       "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;").split()
        if tables:
            counts = q(db, "".join("SELECT count(*) FROM %s;\n" % t for t in tables)).split()
            out.update({"%s.%s" % (db, t): c for t, c in zip(tables, counts)})
    return out
