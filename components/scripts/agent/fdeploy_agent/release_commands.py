"""The app's release commands (the ReleaseCommands step), run in the new release before it goes
live: after the SQL migrations, as the new release's slot user (not the live release's), in the
slots' sandbox, with the staged environment (env.desired: the one in force is the live release's
until the switch), the release as working directory and its venv on PATH; with runtime docker each
in a container of the release's image, fdeploy-<app>:<id>, with the slots' flags (units.py
docker_app_args). First an online backup of every SQLite database in shared/ (as that user). A
failing command stops the deploy before the switch: the live release keeps serving; the database
is not restored (the live release kept writing meanwhile) and the message names the backup.
  release-commands  params APP, RELEASE_ID, COMMANDS (JSON list of command lines, each run by
      /bin/sh -c), KEEP_BACKUPS, KEEP_BACKUPS_BYTES (optional; 0: the default budget), RUNTIME,
      ENV_NAMES, SHARED_DIRS (docker): {"user", "backup", "passed"}
  release-commands-prepare  the same params: only the slot user (slotuser.new_release_user: its
      leftovers ended) and, as that user under a time limit, the backup (prerelease_backup.py);
      {"user", "backup" ("" when no database was saved), "saved", "commands", "restore" (what to
      do when a command fails), "shell" (all of it as shell assignments, quoted by shlex)}
"""
import json
import os
import re
import shlex
import time
from typing import Any, Callable, Dict, List, Optional

from . import app as apps
from . import db_move, lease, migrate_db, mounts, prerelease_backup, replica_undo, slotuser, staging, transient, units
from .errors import AgentError
from .fsutil import read_regular
from .host import Host
from .lock import deploy_lock
from .release import MARKER, check_id

LIMIT = 300   # seconds the backup may take


def parse_commands(raw: Any) -> List[str]:
    try:
        commands = json.loads(raw) if isinstance(raw, str) else (raw if raw is not None else [])
    except ValueError:
        commands = None
    if not isinstance(commands, list) or not all(isinstance(c, str) and c.strip() and "\0" not in c for c in commands):
        raise AgentError("bad release commands: flask-deploy:releaseCommands must be a list of non-empty command lines")
    return commands


def check_keep(raw: Any) -> int:
    if isinstance(raw, bool) or not re.fullmatch(r"[0-9]{1,3}", str(raw)):
        raise AgentError("bad backup count %r (flask-deploy:keepBackups: a whole number, 0-999)" % (raw,))
    return int(raw)


def check_keep_bytes(raw: Any) -> int:
    if raw in (None, ""):
        return 0
    if isinstance(raw, bool) or not re.fullmatch(r"[0-9]{1,16}", str(raw)):
        raise AgentError("bad backup budget %r (flask-deploy:keepBackupsBytes: a size like 2GB or 500MB, or a byte count)" % (raw,))
    return int(raw)


BUDGET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "backup_budget.py")


def backup_argv(user: str, shared: str, dest: str, keep: int, keep_bytes: int = 0, skip: "tuple[str, ...]" = ()) -> List[str]:
    """The backup as USER: this package's prerelease_backup.py, given as -c (the slot user cannot read
    the SSH user's bundle) after the bundle's backup_budget.py (made a module first), under timeout
    (SIGKILL 10 s after the limit's SIGTERM)."""
    with open(BUDGET, encoding="utf-8") as fh:
        budget = fh.read()
    with open(prerelease_backup.__file__, encoding="utf-8") as fh:
        source = fh.read()
    prelude = ("import sys, types\nbackup_budget = types.ModuleType('backup_budget')\n"
               "exec(compile(%r, 'backup_budget.py', 'exec'), backup_budget.__dict__)\n"
               "sys.modules['backup_budget'] = backup_budget\ndel backup_budget, sys, types\n" % budget)
    return ["runuser", "-u", user, "--", "timeout", "-k", "10", str(LIMIT),
            "python3", "-I", "-B", "-c", prelude + source, shared, dest, str(keep), str(keep_bytes)] + ([json.dumps(list(skip))] if skip else [])


def backup(host: Host, app: apps.App, user: str, rid: str, keep: int, keep_bytes: int, log: Callable[[str], None],
           skip: "tuple[str, ...]" = ()) -> Dict[str, Any]:
    shared = app.root + "/shared"
    dest = "%s/backups/pre-release-%s-%s" % (shared, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), rid)
    r = host.run(backup_argv(user, shared, dest, keep, keep_bytes, skip))
    for line in (r.stderr or "").splitlines():
        log(line)
    if r.returncode in (124, 137):
        raise AgentError("the backup of the databases in shared/ before the release commands did not finish within %ds; deploy again\n"
                         "no release command ran, the live release keeps serving (is a database locked by the app for that long?)" % LIMIT)
    try:
        done = json.loads(r.stdout or "") if r.returncode == 0 else None
    except ValueError:
        done = None
    if not isinstance(done, dict) or not isinstance(done.get("saved"), int):
        raise AgentError("could not back up the databases in shared/ before the release commands; no release command ran,"
                         " the live release keeps serving\n%s" % ((r.stderr or "").strip().splitlines() or ["see above"])[-1])
    if done["saved"]:
        log("backup before the release commands: %d database(s), %s in %.1f s, in %s"
            % (done["saved"], prerelease_backup.load_budget().human(done.get("bytes", 0)), done.get("seconds", 0), dest))
    dump = migrate_db.dump_before_release(host, app, user, dest, keep_bytes, log)   # an app on PostgreSQL
    return {"backup": dest if done["saved"] or dump else "", "saved": done["saved"], "pgdump": dump or ""}


def restore_hint(app: apps.App, backup_dir: str, points: Optional[Dict[str, Dict[str, Any]]] = None) -> str:
    replica = "".join(" The replica's restore point of %s: fdeploy backup restore --txid %s%s." % (
        db.split("/shared/", 1)[-1], p["txid"], "" if db.endswith("/shared/db/app.sqlite3") else " --db " + db.split("/shared/", 1)[-1])
        for db, p in sorted((points or {}).items()))
    if not backup_dir:
        return (replica.strip() + (" No other SQLite database was found in shared/." if replica else "")) or "No SQLite database was found in shared/ to back up."
    return replica.strip() + (" " if replica else "") + ("A backup taken before the release commands is in %s: to restore it, stop the app (systemctl stop 'fdeploy-%s@*.service'),"
            " copy its files back over those in %s/shared/ as %s (keeping them group-writable), and deploy again."
            % (backup_dir, app.name, app.root, app.user))


def prepare(host: Host, params: Dict[str, Any], log: Callable[[str], None], lock_wait: int) -> Dict[str, Any]:
    """Verb (under the deploy lock): see the module's docstring. Refusals come before anything changes."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    rid, keep = check_id(params.get("RELEASE_ID")), check_keep(params.get("KEEP_BACKUPS"))
    keep_bytes = check_keep_bytes(params.get("KEEP_BACKUPS_BYTES"))
    commands = parse_commands(params.get("COMMANDS"))
    if read_regular(host.path("%s/releases/%s/%s" % (app.root, rid, MARKER))) is None:
        raise AgentError("release %s is not installed on this server (pulumi up installs it)" % rid)
    user = slotuser.new_release_user(host, {"APP": app.name}, log, lock_wait)["user"]
    if db_move.pending(host, app):   # an app without migrationsDir: the move's copy here (else done already)
        from .migrate_step import install_runner
        install_runner(host, app)
        db_move.copy_pending(host, app, user, keep_bytes, log)
    found = replica_undo.points(host, app, params, log, replica_undo.replicated(host, app), "before the release commands of %s" % rid) or {}
    skip = tuple(sorted(db.split("/shared/", 1)[-1] for db in found))
    result = dict(backup(host, app, user, rid, keep, keep_bytes, log, skip), user=user, commands=commands)
    result["restore"] = restore_hint(app, result["backup"] if result["saved"] else "", found) + \
        (migrate_db.restore_hint(app, result["pgdump"]) if result["pgdump"] else "")
    result["shell"] = ["%s=%s" % (k, shlex.quote(str(result[k]))) for k in ("user", "restore")] + \
        ["commands=(%s)" % " ".join(shlex.quote(c) for c in commands)]
    return result


def command_unit(host: Host, app: apps.App, rid: str, user: str, cmd: str, n: int, docker_args: Optional[List[str]]) -> "tuple[str, List[str], List[str]]":
    """Command CMD's transient unit: (name, properties, command line)."""
    release = "%s/releases/%s" % (app.root, rid)
    name = "fdeploy-%s-release-cmd-%d-%d" % (app.name, os.getpid(), n)
    env = ["EnvironmentFile=%s/env.desired" % app.config_dir, "Environment=RELEASE_ID=" + rid]
    if docker_args is not None:   # a stopped unit stops the docker client; the container goes with ExecStopPost
        return name, ["ExecStopPost=-/usr/bin/docker rm -f " + name] + env, \
            ["/usr/bin/docker", "run", "--rm", "--name", name, *docker_args, "fdeploy-%s:%s" % (app.name, rid), "/bin/sh", "-c", cmd]
    props = ["User=" + user, "Group=" + app.user, "WorkingDirectory=" + release] + env + [
        "Environment=PATH=%s/.venv/bin:/usr/local/bin:/usr/bin:/bin" % release, "Environment=HOME=/tmp"]
    return name, props + [line for line in units.hardening(app.root).splitlines() if line.strip()], ["/bin/sh", "-c", cmd]


def release_commands(host: Host, params: Dict[str, Any], log: Callable[[str], None], lock_wait: int) -> Dict[str, Any]:
    """Verb: see the module's docstring."""
    app = apps.load(host, apps.check_name(params.get("APP")))
    docker = params.get("RUNTIME", "python") == "docker"
    with deploy_lock(host, app.name, lock_wait, log, deploy=lease.deploy_of(params)):
        ready = prepare(host, params, log, lock_wait)
        rid, user, n = params["RELEASE_ID"], ready["user"], 0
        try:
            args = staging.docker_args(host, params, log, lock_wait)["args"] if docker else None
            for n, cmd in enumerate(ready["commands"], 1):
                log("release command %d: %s" % (n, cmd))
                name, props, argv = command_unit(host, app, rid, user, cmd, n, args)
                options, argv = transient.literal(host, argv)   # the command reaches /bin/sh as written
                r = transient.run_unit(host, name, props, argv, options=options)
                for line in (r.stdout or "").rstrip("\n").splitlines():
                    log(line)
                if r.returncode != 0:
                    raise AgentError("release command %d ('%s') failed (exit %d) for release %s (flask-deploy:releaseCommands); it is not live,"
                                     " the live release keeps serving\nThe database may be partly changed and is not restored automatically"
                                     " (the live release kept writing meanwhile). %s" % (n, cmd, r.returncode, rid, ready["restore"]))
        finally:
            if docker:   # the containers' mounts are detached however it ends
                mounts.release(host, app, staging.RELEASE_COMMANDS_SLOT)
        log("release commands of %s: %d passed" % (rid, n))
        return {"user": user, "backup": ready["backup"], "passed": n}
