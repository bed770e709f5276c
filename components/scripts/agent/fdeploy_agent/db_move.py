"""fdeploy db migrate-to-postgres [--back]: the app's data moved between its SQLite file and its
PostgreSQL database by the `pulumi up` that switches DATABASE_URL, with the app in maintenance mode.
  db-move-start   params APP, DIRECTION (to-postgres | to-sqlite): refused unless the app runs on the
                  side it leaves (the environment file in force); records the move pending
                  (/etc/fdeploy/<app>/db-move.json, root-only); the same move pending again: kept
                  (a retry after a failed up). The caller turns maintenance on first.
  (the up)        the schema step (migrate_step.py) calls copy_pending before its migrations: db_copy.py
                  as the new release's slot user, the URL on its stdin (the staged one to PostgreSQL,
                  the one in force back to SQLite); the row counts recorded in the move file
  db-move-finish  params APP: {"direction", "tables", "skipped", "copied"} of the move, which is no
                  longer pending; the caller turns maintenance off.
A copy that fails changes nothing (one transaction) and fails the up before the switch: the live
release keeps serving on the database it had, behind the maintenance page."""
import json
import os
import time
from typing import Any, Callable, Dict, Optional

from . import app as apps
from . import migrate_db
from .errors import AgentError
from .fsutil import read_regular, write_atomic
from .host import Host
from .lock import deploy_lock
from . import lease

Log = Callable[[str], None]
DIRECTIONS = ("to-postgres", "to-sqlite")


def move_file(app: apps.App) -> str:
    return app.config_dir + "/db-move.json"


def pending(host: Host, app: apps.App) -> Optional[Dict[str, Any]]:
    data = read_regular(host.path(move_file(app)))
    try:
        move = json.loads(data) if data else None
    except ValueError:
        return None
    return move if isinstance(move, dict) and move.get("direction") in DIRECTIONS else None


def sqlite_path(app: apps.App) -> str:
    return "%s/shared/db/app.sqlite3" % app.root


def db_move_start(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.deployed(host, params.get("APP"))
    direction = params.get("DIRECTION")
    if direction not in DIRECTIONS:
        raise AgentError("bad DIRECTION %r (to-postgres or to-sqlite)" % (direction,))
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        move = pending(host, app)
        if move and move["direction"] == direction:
            log("the move %s is pending already (a retry): the next up goes on with it" % direction)
            return {"direction": direction, "retry": True}
        if move:
            raise AgentError("the move %s is pending: finish it first (fdeploy db migrate-to-postgres%s)" % (move["direction"], " --back" if move["direction"] == "to-sqlite" else ""))
        on_pg = migrate_db.postgres_url(host, app, staged=False) is not None
        if direction == "to-postgres":
            if on_pg:
                raise AgentError("app %s runs on PostgreSQL already (flask-deploy:database sets DATABASE_URL in its environment): nothing to move" % app.name)
            st = os.lstat(host.path(sqlite_path(app))) if os.path.lexists(host.path(sqlite_path(app))) else None
            if st is None or not os.path.isfile(host.path(sqlite_path(app))) or os.path.islink(host.path(sqlite_path(app))):
                raise AgentError("app %s has no SQLite database (%s): nothing to move; set `database` and pulumi up" % (app.name, sqlite_path(app)))
        elif not on_pg:
            raise AgentError("app %s runs on SQLite (no flask-deploy:database, no PostgreSQL DATABASE_URL in its environment): nothing to move back" % app.name)
        write_atomic(host.path(move_file(app)), json.dumps({"direction": direction, "since": int(time.time())}).encode(), 0o600)
        return {"direction": direction, "retry": False}


def copy_pending(host: Host, app: apps.App, user: str, keep_bytes: int, log: Log) -> None:
    """Inside the up, before the migrations: the pending move's copy, once (recorded in the move file)."""
    move = pending(host, app)
    if move is None or move.get("copied"):
        return
    staged = migrate_db.postgres_url(host, app, staged=True)
    if move["direction"] == "to-postgres":
        if staged is None:
            raise AgentError("moving to PostgreSQL, but this up's environment has no PostgreSQL DATABASE_URL: set flask-deploy:database\n"
                             "fdeploy db migrate-to-postgres runs the up; nothing was changed")
        url, args = staged, ["--db", sqlite_path(app), "to-postgres"]
    else:
        url = migrate_db.postgres_url(host, app, staged=False)
        if staged is not None or url is None:
            raise AgentError("moving back to SQLite, but flask-deploy:database still sets a PostgreSQL DATABASE_URL for this up\n"
                             "fdeploy db migrate-to-postgres --back removes it and runs the up; nothing was changed")
        args = ["--db", sqlite_path(app), "--backup-dir", "%s/shared/backups" % app.root, "--keep-bytes", str(keep_bytes), "to-sqlite"]
    migrate_db.ensure_client(host, log)
    log("moving the data %s (db_copy.py, as %s) ..." % (move["direction"], user))
    r = host.run(["runuser", "-u", user, "--", "python3", "-I", "-B", "%s/migrations/db_copy.py" % app.root, *args], input=url + "\n", umask=0o007)
    for line in (r.stderr or "").rstrip().splitlines():
        log(line)
    try:
        result = json.loads((r.stdout or "").strip().splitlines()[-1]) if r.returncode == 0 else None
    except (ValueError, IndexError):
        result = None
    if not isinstance(result, dict):
        last = ((r.stderr or "").strip().splitlines() or ["(no output)"])[-1]
        raise AgentError("the copy %s failed (db_copy.py, exit %d); nothing was copied\n"
                         "The live release keeps serving on the database it had (behind the maintenance page).\n%s" % (move["direction"], r.returncode, last))
    write_atomic(host.path(move_file(app)), json.dumps(dict(move, copied=int(time.time()), **result)).encode(), 0o600)


def db_move_finish(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.deployed(host, params.get("APP"))
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        move = pending(host, app)
        if move is None:
            return {"direction": None, "copied": False, "tables": {}, "skipped": []}
        on_pg = migrate_db.postgres_url(host, app, staged=False) is not None
        done = bool(move.get("copied")) and on_pg == (move["direction"] == "to-postgres")
        if not done:
            back = " --back" if move["direction"] == "to-sqlite" else ""
            raise AgentError("the move %s is not live yet (its up failed or did not run): run fdeploy db migrate-to-postgres%s" % (move["direction"], back))
        os.unlink(host.path(move_file(app)))
        return {"direction": move["direction"], "copied": True, "tables": move.get("tables", {}), "skipped": move.get("skipped", [])}
