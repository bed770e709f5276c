"""The schema step (MigrationRunner):
  migrate  params APP, MIGRATIONS (migrations-<hash>), KEEP_BACKUPS, KEEP_BACKUPS_BYTES (optional), or
           APP, DOWN_TO_SCHEMA_OF (a release id; a rollback, after the switch), KEEP_BACKUPS, …:
           {"mode", "schema_version" (the version the database is at afterwards)}
The decisions are migrate_plan.py's. "up": the uploaded set is copied to migrations/<hash> (root-
owned, readable by the app's users) when it is new, and migrate.py up runs; a failing migration is
rolled back and the deploy stops before any switch (the live release keeps serving on the old
schema); only after success does migrations/current point at the set. "down": migrate.py down to
the schema the pinned release last went live with, with the set in force. migrate.py (standalone,
with backup_budget.py beside it) runs as the new release's slot user, which no process of the live
release can signal or trace, with umask 0007 (shared/ is the app's group's); it takes an online
backup first when anything changes (with backup.beforeChange: replica, BEFORE_CHANGE, the replica's
restore point instead when it can be had: replica_undo.py). An app on PostgreSQL (migrate_db.py):
migrate.py --url-stdin with the URL on its stdin, postgresql-client installed first; a pg_dump is its backup."""
import os
import re
import shutil
from typing import Any, Callable, Dict, List, Optional

from . import app as apps
from . import db_move, lease, migrate_db, migrate_plan, replica_undo, slotuser
from .errors import AgentError
from .fsutil import own_dir, write_atomic
from .host import Host
from .install import link, remove, root_owned
from .lock import deploy_lock
from .release import bundle_home
from .release_commands import check_keep

Log = Callable[[str], None]
SCRIPTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the bundle: migrate.py, backup_budget.py


def install_runner(host: Host, app: apps.App) -> None:
    """This bundle's migrate.py and the module it loads, the pair a down or an up runs."""
    own_dir(host.path(app.root + "/migrations"), 0o755)
    for name, mode in (("backup_budget.py", 0o644), ("migrate_pg.py", 0o644), ("db_copy.py", 0o644), ("migrate.py", 0o755)):
        with open(os.path.join(SCRIPTS, name), "rb") as fh:
            write_atomic(host.path("%s/migrations/%s" % (app.root, name)), fh.read(), mode)


def copy_set(host: Host, src: str, folder: str) -> None:
    """The uploaded set SRC as FOLDER (root-owned), whole or not at all (a temporary copy renamed)."""
    tmp = host.path(folder + ".tmp")
    remove(tmp)
    shutil.copytree(src, tmp, symlinks=True)
    root_owned(tmp)
    os.rename(tmp, host.path(folder))


def migrate_argv(app: apps.App, user: str, folder: str, keep: int, keep_bytes: int, args: List[str], postgres: bool = False) -> List[str]:
    db = ["--url-stdin"] if postgres else ["--db", "%s/shared/db/app.sqlite3" % app.root]
    return ["runuser", "-u", user, "--", "python3", "%s/migrations/migrate.py" % app.root, *db,
            "--dir", folder, "--backup-dir", "%s/shared/backups" % app.root, "--keep", str(keep), "--keep-bytes", str(keep_bytes), *args]


def run_migrate(host: Host, app: apps.App, folder: str, keep: int, keep_bytes: int, args: List[str], log: Log, url: Optional[str] = None) -> int:
    """migrate.py ARGS as the new release's slot user (what that user left running ended first); the schema version it reached.
    URL: the PostgreSQL database's (on stdin), None for SQLite."""
    user = slotuser.new_release_user(host, {"APP": app.name}, log, 0)["user"]
    argv = migrate_argv(app, user, folder, keep, keep_bytes, args, url is not None)
    r = host.run(argv, umask=0o007) if url is None else host.run(argv, input=url + "\n", umask=0o007)
    for line in (r.stderr or "").rstrip().splitlines():
        log(line)
    m = re.search(r"^schema_version=(\d+)\s*\Z", r.stdout or "", re.M)
    if r.returncode != 0 or m is None:
        last = ((r.stderr or "").strip().splitlines() or ["(no output)"])[-1]
        if args[0] == "up":
            raise AgentError("a migration of flask-deploy:migrationsDir failed (migrate.py up, exit %d); fix it and deploy again\n%s\n"
                             "the deploy stopped before the switch: the live release keeps serving on the schema it had" % (r.returncode, last))
        raise AgentError("bringing the schema down failed (migrate.py down, exit %d): the pinned release (the stack's `release` setting)"
                         " runs on the newer schema\n%s" % (r.returncode, last))
    return int(m.group(1))


def migrate(host: Host, params: Dict[str, Any], log: Log, lock_wait: int) -> Dict[str, Any]:
    app = apps.load(host, apps.check_name(params.get("APP")))
    keep = check_keep(params.get("KEEP_BACKUPS"))
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        plan = migrate_plan.plan(host, app, params)
        if plan["mode"] == "none":
            return {"mode": "none", "schema_version": 0}
        if plan["mode"] == "up" and plan["copy"]:
            own_dir(host.path(app.root + "/migrations"), 0o755)
            copy_set(host, "%s/%s" % (bundle_home(), params["MIGRATIONS"]), plan["dir"])
        install_runner(host, app)
        if plan["mode"] == "up":   # fdeploy db migrate-to-postgres: the data moved before the migrations
            db_move.copy_pending(host, app, slotuser.new_release_user(host, {"APP": app.name}, log, 0)["user"], plan["keep_bytes"], log)
        url = migrate_db.postgres_url(host, app, staged=plan["mode"] == "up")
        if url:
            migrate_db.ensure_client(host, log)
        args = ["down", "--to", str(plan["schema"])] if plan["mode"] == "down" else ["up"]
        if url is None and replica_undo.undo_point(host, app, params, log) is not None:
            args.append("--no-copy")   # the undo is the replica's restore point (logged and recorded)
        version = run_migrate(host, app, plan["dir"], keep, plan["keep_bytes"], args, log, url)
        if plan["mode"] == "up":
            # the set the database is now at (root-owned: the switch records its version, a rollback
            # runs its down files); moved only after success: a failed migration leaves the previous set current
            link(plan["dir"], host.path(app.root + "/migrations/current"))
        return {"mode": plan["mode"], "schema_version": version}
